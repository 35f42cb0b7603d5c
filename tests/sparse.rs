//! End to end: a large sparse file in a `dir:` source is streamed into the
//! store and placed with its holes, in bounded memory.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::process::Stdio;

/// The apparent size of the sparse file.
const APPARENT: u64 = 1 << 30;

/// Runs `antares ARGS…` and returns its exit code and peak RSS in KiB, from
/// the rusage of this very child (`wait4`; `RUSAGE_CHILDREN` would mix in
/// the children of tests running in parallel). wait4 reaps the child, which
/// clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_measured(sb: &Sandbox, cwd: &std::path::Path, args: &[&str]) -> (i32, i64) {
    let child = sb
        .cmd(cwd, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn antares");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; the pointers are valid for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "antares {args:?} died: {status}");
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

#[test]
fn a_sparse_gigabyte_is_synced_sparse_in_little_memory() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    fs::create_dir_all(src.join("data")).unwrap();
    fs::write(src.join("data/small.txt"), "small\n").unwrap();
    let big = fs::File::create(src.join("data/disk.img")).unwrap();
    big.write_all_at(b"boot sector", 0).unwrap();
    big.write_all_at(b"in the middle", APPARENT / 2).unwrap();
    big.write_all_at(b"at the end", APPARENT - 10).unwrap();
    drop(big);
    let src_blocks = fs::metadata(src.join("data/disk.img")).unwrap().blocks() * 512;
    if src_blocks >= APPARENT / 2 {
        println!("SKIPPED: the temp dir's file system does not keep holes");
        return;
    }
    let spec = format!("dir:{}", src.display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);

    let (code, rss_kib) = run_measured(&sb, &sb.path("ws"), &["sync", "."]);
    assert_eq!(code, 0);
    println!("sync of a sparse {APPARENT}-byte file: peak RSS {rss_kib} KiB");
    // Holding the file would cost its apparent size (1 GiB); streaming costs
    // a buffer per thread.
    assert!(
        rss_kib < 200 * 1024,
        "peak RSS {rss_kib} KiB for a sparse {APPARENT}-byte file"
    );

    let placed = sb.path("ws/data/disk.img");
    let meta = fs::metadata(&placed).unwrap();
    assert_eq!(meta.len(), APPARENT);
    assert!(
        meta.blocks() * 512 < 16 << 20,
        "placed file is sparse: {} bytes allocated",
        meta.blocks() * 512
    );
    let f = fs::File::open(&placed).unwrap();
    let mut buf = [0u8; 13];
    f.read_exact_at(&mut buf, APPARENT / 2).unwrap();
    assert_eq!(&buf, b"in the middle");
    f.read_exact_at(&mut buf[..10], APPARENT - 10).unwrap();
    assert_eq!(&buf[..10], b"at the end");
    let st = json(&sb.ok(&sb.path("ws"), &["status", "--json"]));
    assert_eq!(st["modified"].as_array().map(Vec::len), Some(0), "{st}");
}
