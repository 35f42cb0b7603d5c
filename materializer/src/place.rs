//! Putting one file or symlink into the workspace: clone or copy from the
//! store into a file with no name yet beside its destination (or into the
//! staging dir), set the mode, then link or rename it into place.

use crate::fsutil::{self, c_path, check_rc, StatKey};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Files at least this large are cloned (reflinked) when the file system can;
/// smaller ones are copied: for small files a clone costs more than a copy
/// (measured on XFS: `cp -a --reflink=always` 7.48 s vs 5.27 s plain).
pub const REFLINK_MIN_SIZE: u64 = 32 * 1024;

/// How a file's bytes got into the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Cloned from the store (shares its blocks).
    Reflink,
    /// Copied from the store.
    Copy,
}

/// Remembers what the file systems cannot do (clones between the store and
/// this workspace, unnamed files in it), so ext4 does not pay a failing call
/// per file.
#[derive(Debug, Default)]
pub struct Placer {
    no_reflink: AtomicBool,
    no_unnamed: AtomicBool,
}

/// Content ready to be put in place.
pub enum Staged {
    /// A file with no name yet, in the destination's directory.
    Unnamed(File),
    /// A file or symlink at this temp path (in the staging directory).
    Named(PathBuf),
}

impl Placer {
    /// Writes the content of `src` (a store object, `size` bytes) with
    /// permission bits `mode` to a new file: one with no name in `dir` (the
    /// destination's directory) when given and the file system can, else
    /// the named file `tmp`.
    pub fn stage_file(
        &self,
        src: &Path,
        dir: Option<&Path>,
        tmp: &Path,
        size: u64,
        mode: u32,
    ) -> io::Result<(Staged, Method)> {
        let from = File::open(src)?;
        if let Some(dir) = dir.filter(|_| !self.no_unnamed.load(Ordering::Relaxed)) {
            match fsutil::create_unnamed(dir, mode) {
                Ok(to) => {
                    let method = self.fill(&from, &to, size, mode)?;
                    return Ok((Staged::Unnamed(to), method));
                }
                Err(e) if fsutil::unnamed_unsupported(&e) => {
                    if e.raw_os_error() != Some(libc::ENOENT) {
                        self.no_unnamed.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(tmp)?;
        match self.fill(&from, &to, size, mode) {
            Ok(method) => Ok((Staged::Named(tmp.to_path_buf()), method)),
            Err(e) => {
                let _ = fs::remove_file(tmp);
                Err(e)
            }
        }
    }

    /// Gives the new, empty file `to` the content of `from`: a clone when
    /// it is large enough and the file systems allow, else a copy.
    fn fill(&self, from: &File, mut to: &File, size: u64, mode: u32) -> io::Result<Method> {
        let mut method = Method::Copy;
        if size >= REFLINK_MIN_SIZE && !self.no_reflink.load(Ordering::Relaxed) {
            match reflink_copy::reflink_file(from, to) {
                Ok(()) => method = Method::Reflink,
                Err(e) => {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY)
                    ) {
                        self.no_reflink.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        if method == Method::Copy {
            if crate::sparse::has_holes(from)? {
                crate::sparse::copy(from, to, size, &mut |_| {})?;
            } else {
                let mut from = from;
                io::copy(&mut from, &mut to)?;
            }
        }
        // The umask may have narrowed the mode given at creation.
        to.set_permissions(Permissions::from_mode(mode))?;
        Ok(method)
    }
}

/// Makes `tmp` a symlink to `target`.
pub fn stage_symlink(target: &str, tmp: &Path) -> io::Result<Staged> {
    std::os::unix::fs::symlink(target, tmp)?;
    Ok(Staged::Named(tmp.to_path_buf()))
}

/// Moves staged content to `dest`. With `expect`, `dest` must still have
/// that stat (the state the plan saw): if the user touched it meanwhile the
/// staged content is dropped and `Ok(false)` returned, so an edit is never
/// overwritten. With `expect == None` the destination must not exist: a file
/// the user just created is never clobbered. An unnamed file replacing one
/// is first linked at `tmp` (so a crash between the two steps leaves it in
/// the staging directory, never in the workspace), then renamed.
pub fn commit(
    staged: Staged,
    tmp: &Path,
    dest: &Path,
    expect: Option<StatKey>,
) -> io::Result<bool> {
    let named = match staged {
        Staged::Unnamed(file) => {
            if expect.is_none() {
                return match fsutil::link_unnamed(&file, dest) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                };
            }
            fsutil::link_unnamed(&file, tmp)?;
            tmp
        }
        Staged::Named(ref path) => path.as_path(),
    };
    let placed = match expect {
        Some(stat) => match hold(dest)? {
            Some((old, now)) if now == stat => {
                fs::rename(named, dest)?;
                // The replaced file is freed here, not inside the rename.
                drop(old);
                true
            }
            _ => false,
        },
        None => match rename_noreplace(named, dest) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        },
    };
    if !placed {
        let _ = fs::remove_file(named);
    }
    Ok(placed)
}

/// A reference to the file at `dest` (not following a symlink) and its
/// stat, `None` if nothing is there. Held across the rename that replaces
/// it, the reference keeps the kernel from freeing the old file inside
/// the rename: a rename across directories holds a lock global to the file
/// system, and freeing (with `discard`, a synchronous trim per file) under
/// it serialized every placement.
fn hold(dest: &Path) -> io::Result<Option<(File, StatKey)>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(dest)
    {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let stat = StatKey::of(&file.metadata()?);
    Ok(Some((file, stat)))
}

fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: valid NUL-terminated paths; renameat2 has no other preconditions.
    check_rc(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::names;

    /// A store object, a staging dir and a destination dir.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("object");
        fs::write(&src, b"new content").unwrap();
        let (tmp_dir, dest_dir) = (t.path().join("tmp"), t.path().join("ws"));
        fs::create_dir(&tmp_dir).unwrap();
        fs::create_dir(&dest_dir).unwrap();
        (t, src, tmp_dir, dest_dir)
    }

    fn stage(placer: &Placer, src: &Path, dir: &Path, tmp: &Path) -> Staged {
        let (staged, method) = placer.stage_file(src, Some(dir), tmp, 11, 0o640).unwrap();
        assert_eq!(method, Method::Copy);
        staged
    }

    #[test]
    fn an_unnamed_file_is_invisible_until_committed_then_linked() {
        let (_t, src, tmp_dir, dest_dir) = setup();
        let placer = Placer::default();
        let (tmp, dest) = (tmp_dir.join("0"), dest_dir.join("f"));
        let staged = stage(&placer, &src, &dest_dir, &tmp);
        assert!(
            matches!(staged, Staged::Unnamed(_)),
            "ext4/xfs/tmpfs have O_TMPFILE"
        );
        assert!(names(&dest_dir).is_empty() && names(&tmp_dir).is_empty());
        assert!(commit(staged, &tmp, &dest, None).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"new content");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(names(&tmp_dir).is_empty());
    }

    #[test]
    fn a_new_file_never_clobbers_one_that_appeared() {
        let (_t, src, tmp_dir, dest_dir) = setup();
        let placer = Placer::default();
        let (tmp, dest) = (tmp_dir.join("0"), dest_dir.join("f"));
        fs::write(&dest, b"the user's").unwrap();
        let staged = stage(&placer, &src, &dest_dir, &tmp);
        assert!(!commit(staged, &tmp, &dest, None).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"the user's");
        assert_eq!(names(&dest_dir), ["f"]);
        assert!(names(&tmp_dir).is_empty());
    }

    #[test]
    fn a_replacement_goes_through_only_over_the_expected_file() {
        let (_t, src, tmp_dir, dest_dir) = setup();
        let placer = Placer::default();
        let (tmp, dest) = (tmp_dir.join("0"), dest_dir.join("f"));
        fs::write(&dest, b"old").unwrap();
        let seen = StatKey::of(&fs::symlink_metadata(&dest).unwrap());

        // Edited after the plan looked: kept, and nothing left behind.
        fs::write(&dest, b"edited by the user").unwrap();
        let staged = stage(&placer, &src, &dest_dir, &tmp);
        assert!(!commit(staged, &tmp, &dest, Some(seen)).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"edited by the user");
        assert!(names(&tmp_dir).is_empty());
        assert_eq!(names(&dest_dir), ["f"]);

        // As the plan saw it: replaced.
        let seen = StatKey::of(&fs::symlink_metadata(&dest).unwrap());
        let staged = stage(&placer, &src, &dest_dir, &tmp);
        assert!(commit(staged, &tmp, &dest, Some(seen)).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"new content");
        assert!(names(&tmp_dir).is_empty());
    }

    #[test]
    fn without_a_directory_the_file_is_staged_by_name() {
        let (_t, src, tmp_dir, dest_dir) = setup();
        let placer = Placer::default();
        let (tmp, dest) = (tmp_dir.join("0"), dest_dir.join("f"));
        let (staged, _) = placer.stage_file(&src, None, &tmp, 11, 0o644).unwrap();
        assert!(matches!(&staged, Staged::Named(p) if p == &tmp));
        assert_eq!(names(&tmp_dir), ["0"]);
        assert!(commit(staged, &tmp, &dest, None).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"new content");
        assert!(names(&tmp_dir).is_empty());
    }
}
