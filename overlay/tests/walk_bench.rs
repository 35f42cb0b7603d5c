//! Walk timings on a 50,000-file tree (2,000 directories of 25 files), for
//! both local sources. Ignored by default (building the fixture takes a few
//! seconds); run with
//! `cargo test -p antares-overlay --release --test walk_bench -- --ignored --nocapture`.

use antares_overlay::{DirSource, EntryKind, GitSource, RepoPath, Source};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DIRS: usize = 2_000;
const PER_DIR: usize = 25;

fn rel(d: usize, f: usize) -> String {
    format!("pkg{:02}/d{d:04}/f{f:02}.txt", d % 40)
}

fn median_walk(src: &dyn Source, runs: usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let all = src.walk(&RepoPath::root()).unwrap();
        times.push(t.elapsed());
        n = all.iter().filter(|e| e.kind == EntryKind::File).count();
    }
    times.sort();
    (times[runs / 2], n)
}

/// The syscall floor: a sequential read_dir + lstat of every entry, building
/// nothing. Printed beside the source's walk so a loaded machine shows as such.
fn median_floor(root: &Path, runs: usize) -> Duration {
    fn walk(dir: &Path) -> usize {
        let mut n = 0;
        for de in std::fs::read_dir(dir).unwrap() {
            let de = de.unwrap();
            let m = de.metadata().unwrap();
            n += 1;
            if m.is_dir() {
                n += walk(&de.path());
            }
        }
        n
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            assert!(walk(root) > 0);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn build_dir(root: &Path) {
    for d in 0..DIRS {
        for f in 0..PER_DIR {
            let p = root.join(rel(d, f));
            if f == 0 {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            }
            std::fs::write(p, format!("file {d} {f}\n")).unwrap();
        }
    }
}

/// One commit with all files, written by `git fast-import` (much faster than
/// creating files and running `git add`).
fn build_git(repo: &Path) {
    let ok = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(repo)
        .status()
        .unwrap();
    assert!(ok.success());
    let mut child = Command::new("git")
        .current_dir(repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut s = std::io::BufWriter::new(child.stdin.take().unwrap());
    writeln!(
        s,
        "commit refs/heads/main\ncommitter T <t@example.com> 0 +0000\ndata 5\nbench"
    )
    .unwrap();
    for d in 0..DIRS {
        for f in 0..PER_DIR {
            let content = format!("file {d} {f}\n");
            writeln!(
                s,
                "M 100644 inline {}\ndata {}\n{content}",
                rel(d, f),
                content.len()
            )
            .unwrap();
        }
    }
    drop(s);
    assert!(child.wait().unwrap().success());
    let ok = Command::new("git")
        .current_dir(repo)
        .args(["symbolic-ref", "HEAD", "refs/heads/main"])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
#[ignore = "benchmark; run explicitly with --ignored --nocapture"]
fn walk_50k_files() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("tree");
    build_dir(&dir);
    let src = DirSource::open(&dir).unwrap();
    let (time, n) = median_walk(&src, 7);
    assert_eq!(n, DIRS * PER_DIR);
    let floor = median_floor(&dir, 7);
    println!(
        "dir: walk of {n} files: median {:.1} ms (warm, 7 runs); bare sequential read_dir+lstat: {:.1} ms",
        time.as_secs_f64() * 1e3,
        floor.as_secs_f64() * 1e3
    );

    let repo = t.path().join("repo.git");
    build_git(&repo);
    let src = GitSource::open(&repo, None).unwrap();
    let (time, n) = median_walk(&src, 7);
    assert_eq!(n, DIRS * PER_DIR);
    println!(
        "git: walk of {n} files: median {:.1} ms (warm, 7 runs)",
        time.as_secs_f64() * 1e3
    );
    let t0 = Instant::now();
    let fresh = GitSource::open(&repo, None).unwrap();
    let all = fresh.walk(&RepoPath::root()).unwrap();
    println!(
        "git: open + first walk of {} entries: {:.1} ms",
        all.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
}
