//! Copying a file with its holes, in bounded memory.
//!
//! A sparse file (a disk image, a core file, a database with preallocated
//! space) has far fewer blocks than its size says. `read_to_end` costs its
//! whole apparent size in memory, and a plain copy (`copy_file_range` on a
//! file system without clones reads holes as zeros) writes it dense. Here
//! only the data segments (`SEEK_DATA`/`SEEK_HOLE`) are copied, one buffer at
//! a time; a file system that does not report holes reports the whole file
//! as one data segment, which is still a correct copy.

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};

/// The buffer of one read: the memory a copy costs, whatever the file's size.
const CHUNK: usize = 1 << 20;

/// Whether `file` has fewer blocks than its size needs (it has holes).
pub fn has_holes(file: &File) -> io::Result<bool> {
    let meta = file.metadata()?;
    Ok(meta.blocks().saturating_mul(512) < meta.len())
}

/// Copies the first `len` bytes of `from` into the empty file `to`, leaving
/// holes where `from` has them, and hands `each` every byte of the content
/// in order (holes as zeros: what a reader sees, so a hash of it is the
/// content's). Fails if `from` turns out shorter than `len`.
pub fn copy(from: &File, to: &File, len: u64, each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    // Past the end, SEEK_DATA reports "all hole": a short file would be
    // padded with zeros instead of failing.
    let actual = from.metadata()?.len();
    if actual < len {
        return Err(short(actual, len));
    }
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK)).max(1)];
    let mut pos = 0u64;
    while pos < len {
        let data = match seek(from, pos, libc::SEEK_DATA) {
            Ok(d) => d.min(len),
            // No data after `pos`: the rest is a hole.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => len,
            Err(e) => return Err(e),
        };
        let hole = if data < len {
            seek(from, data, libc::SEEK_HOLE)?.min(len)
        } else {
            len
        };
        feed_zeros(data - pos, each);
        let mut at = data;
        while at < hole {
            let want = usize::try_from(hole - at).unwrap_or(CHUNK).min(buf.len());
            let n = match from.read_at(&mut buf[..want], at) {
                Ok(0) => return Err(short(at, len)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            to.write_all_at(&buf[..n], at)?;
            each(&buf[..n]);
            at += n as u64;
        }
        pos = hole;
    }
    // A trailing hole: the size without the blocks.
    to.set_len(len)
}

fn short(at: u64, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("file ended at {at} bytes, {len} expected (changed while read?)"),
    )
}

fn feed_zeros(mut n: u64, each: &mut dyn FnMut(&[u8])) {
    static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
    while n > 0 {
        let k = usize::try_from(n).unwrap_or(ZEROS.len()).min(ZEROS.len());
        each(&ZEROS[..k]);
        n -= k as u64;
    }
}

fn seek(file: &File, pos: u64, whence: libc::c_int) -> io::Result<u64> {
    let pos = libc::off_t::try_from(pos).map_err(io::Error::other)?;
    // SAFETY: lseek on an fd we own; no memory is passed.
    let r = unsafe { libc::lseek(file.as_raw_fd(), pos, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn holes_stay_holes_and_the_content_is_seen_whole() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let mut f = File::create(&a).unwrap();
        let len = 64u64 << 20;
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"middle", 20 << 20).unwrap();
        f.set_len(len).unwrap();
        f.flush().unwrap();
        let from = File::open(&a).unwrap();
        assert!(has_holes(&from).unwrap());
        let to = File::create(&b).unwrap();
        let mut hasher = blake3::Hasher::new();
        let mut seen = 0u64;
        copy(&from, &to, len, &mut |bytes| {
            seen += bytes.len() as u64;
            hasher.update(bytes);
        })
        .unwrap();
        assert_eq!(seen, len);
        let expect = blake3::hash(&std::fs::read(&a).unwrap());
        assert_eq!(hasher.finalize(), expect);
        assert_eq!(blake3::hash(&std::fs::read(&b).unwrap()), expect);
        let blocks = std::fs::metadata(&b).unwrap().blocks() * 512;
        assert!(blocks < 8 << 20, "copy is sparse: {blocks} bytes allocated");
    }

    #[test]
    fn a_file_shorter_than_expected_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), b"short").unwrap();
        let from = File::open(t.path().join("a")).unwrap();
        let to = File::create(t.path().join("b")).unwrap();
        let err = copy(&from, &to, 100, &mut |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }
}
