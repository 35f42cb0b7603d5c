//! Putting one file or symlink into the workspace: clone or copy from the
//! store into a file with no name yet beside its destination (or into the
//! staging dir), set the mode, then link or rename it into place.
//!
//! Every step names its destination by an open directory and one entry
//! name ([`Spot`]), never by a path: a directory of the workspace swapped
//! for a symlink after the plan looked (or even after the spot was opened)
//! cannot redirect a write, a rename or a removal outside the workspace.

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use crate::fsutil::{self, StatKey};
use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// Where a placement lands: the directory holding it, opened beneath a
/// root without following a symlink at any component, and the name in it.
pub struct Spot {
    dir: File,
    name: CString,
}

impl Spot {
    /// The spot of `rel` ('/'-separated) below the open directory `root`.
    /// Fails with `ELOOP` if a directory on the way is a symlink, `ENOTDIR`
    /// if it is a file, `ENOENT` if it is missing.
    pub fn beneath(root: &File, rel: &str) -> io::Result<Spot> {
        let (dir, name) = fsutil::parent_beneath(root, rel)?;
        Ok(Spot { dir, name })
    }

    /// The directory holding the spot.
    pub fn dir(&self) -> &File {
        &self.dir
    }

    /// The stat of what is at the spot (not following a symlink), `None`
    /// if nothing is.
    pub fn stat(&self) -> io::Result<Option<StatKey>> {
        let name = self.name.to_str().map_err(io::Error::other)?;
        StatKey::of_entry(&self.dir, name)
    }

    /// Removes the file or symlink at the spot.
    pub fn remove_file(&self) -> io::Result<()> {
        fsutil::unlink_at(&self.dir, &self.name)
    }

    /// Removes the empty directory at the spot.
    pub fn remove_empty_dir(&self) -> io::Result<()> {
        fsutil::rmdir_at(&self.dir, &self.name)
    }
}

/// What a failure of [`Spot::beneath`] means, for the user.
pub fn spot_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => {
            "a directory on the way is a symlink in the workspace; not following it".into()
        }
        Some(libc::ENOTDIR) => "a file in the workspace is where a directory is needed".into(),
        _ => e.to_string(),
    }
}

/// The directory staged content waits in before its rename (antares' own
/// tmp dir), open once, and a source of names unique in it.
pub struct Staging {
    dir: File,
    counter: AtomicU64,
}

impl Staging {
    /// Opens the staging directory `path` (which must exist; not a symlink).
    pub fn open(path: &Path) -> io::Result<Staging> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)?;
        Ok(Staging {
            dir,
            counter: AtomicU64::new(0),
        })
    }

    fn next_name(&self) -> CString {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        CString::new(format!("{}.{n}", std::process::id())).unwrap_or_default()
    }

    /// Removes the staged entry `name` (best effort: the staging directory
    /// is emptied at the start of every sync anyway).
    fn discard(&self, name: &CStr) {
        let _ = fsutil::unlink_at(&self.dir, name);
    }
}

/// Content ready to be put in place.
pub enum Staged {
    /// A file with no name yet, in the destination's directory.
    Unnamed(File),
    /// A file or symlink with this name in the staging directory.
    Named(CString),
}

impl Staged {
    /// Drops staged content that will not be placed.
    pub fn discard(self, staging: &Staging) {
        if let Staged::Named(name) = self {
            staging.discard(&name);
        }
    }
}

impl Placer {
    /// Writes the content of `src` (a store object, `size` bytes) with
    /// permission bits `mode` to a new file: one with no name in `beside`
    /// (the destination's directory) when given and the file system can,
    /// else a named file in `staging`.
    pub fn stage_file(
        &self,
        src: &Path,
        beside: Option<&File>,
        staging: &Staging,
        size: u64,
        mode: u32,
    ) -> io::Result<(Staged, Method)> {
        let from = File::open(src)?;
        if let Some(dir) = beside.filter(|_| !self.no_unnamed.load(Ordering::Relaxed)) {
            match fsutil::create_unnamed_in(dir, mode) {
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
        let name = staging.next_name();
        // SAFETY: valid fd and NUL-terminated name; a returned fd is ours to own.
        let fd = unsafe {
            libc::openat(
                staging.dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let to = unsafe { File::from_raw_fd(fd) };
        match self.fill(&from, &to, size, mode) {
            Ok(method) => Ok((Staged::Named(name), method)),
            Err(e) => {
                staging.discard(&name);
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

/// Makes a symlink to `target` in `staging`.
pub fn stage_symlink(target: &str, staging: &Staging) -> io::Result<Staged> {
    let name = staging.next_name();
    let t = fsutil::cstr(target)?;
    // SAFETY: valid fd and NUL-terminated strings.
    fsutil::check_rc(unsafe {
        libc::symlinkat(t.as_ptr(), staging.dir.as_raw_fd(), name.as_ptr())
    })?;
    Ok(Staged::Named(name))
}

/// Moves staged content to `spot`, returning the stat of what was placed.
/// With `expect`, the spot must still have that stat (the state the plan
/// saw): if the user touched it meanwhile the staged content is dropped and
/// `Ok(None)` returned, so an edit is never overwritten. With `expect ==
/// None` the spot must be free: a file the user just created is never
/// clobbered. An unnamed file replacing one is first linked into the
/// staging directory (so a crash between the two steps leaves it there,
/// never in the workspace), then renamed.
pub fn commit(
    staged: Staged,
    staging: &Staging,
    spot: &Spot,
    expect: Option<StatKey>,
) -> io::Result<Option<StatKey>> {
    let named = match staged {
        Staged::Unnamed(file) => {
            if expect.is_none() {
                return match fsutil::link_unnamed_at(&file, &spot.dir, &spot.name) {
                    Ok(()) => spot.stat(),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
                    Err(e) => Err(e),
                };
            }
            let name = staging.next_name();
            fsutil::link_unnamed_at(&file, &staging.dir, &name)?;
            name
        }
        Staged::Named(name) => name,
    };
    let placed = match expect {
        Some(stat) => match hold(spot)? {
            Some((old, now)) if now == stat => {
                let res = fsutil::rename_at(&staging.dir, &named, &spot.dir, &spot.name, 0);
                if res.is_err() {
                    staging.discard(&named);
                }
                res?;
                // The replaced file is freed here, not inside the rename.
                drop(old);
                true
            }
            _ => false,
        },
        None => match fsutil::rename_at(
            &staging.dir,
            &named,
            &spot.dir,
            &spot.name,
            libc::RENAME_NOREPLACE,
        ) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                staging.discard(&named);
                return Err(e);
            }
        },
    };
    if !placed {
        staging.discard(&named);
        return Ok(None);
    }
    spot.stat()
}

/// A reference to what is at `spot` (not following a symlink) and its
/// stat, `None` if nothing is there. Held across the rename that replaces
/// it, the reference keeps the kernel from freeing the old file inside
/// the rename: a rename across directories holds a lock global to the file
/// system, and freeing (with `discard`, a synchronous trim per file) under
/// it serialized every placement.
fn hold(spot: &Spot) -> io::Result<Option<(File, StatKey)>> {
    let file = match fsutil::open_at(&spot.dir, &spot.name, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let stat = StatKey::of(&file.metadata()?);
    Ok(Some((file, stat)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::names;
    use std::fs;
    use std::path::PathBuf;

    /// A store object, a staging dir and a destination dir (open).
    struct Setup {
        _t: tempfile::TempDir,
        src: PathBuf,
        tmp_dir: PathBuf,
        dest_dir: PathBuf,
        staging: Staging,
        root: File,
    }

    fn setup() -> Setup {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("object");
        fs::write(&src, b"new content").unwrap();
        let (tmp_dir, dest_dir) = (t.path().join("tmp"), t.path().join("ws"));
        fs::create_dir(&tmp_dir).unwrap();
        fs::create_dir(&dest_dir).unwrap();
        Setup {
            staging: Staging::open(&tmp_dir).unwrap(),
            root: File::open(&dest_dir).unwrap(),
            _t: t,
            src,
            tmp_dir,
            dest_dir,
        }
    }

    fn stage(placer: &Placer, s: &Setup, spot: &Spot) -> Staged {
        let (staged, method) = placer
            .stage_file(&s.src, Some(spot.dir()), &s.staging, 11, 0o640)
            .unwrap();
        assert_eq!(method, Method::Copy);
        staged
    }

    #[test]
    fn an_unnamed_file_is_invisible_until_committed_then_linked() {
        let s = setup();
        let placer = Placer::default();
        let spot = Spot::beneath(&s.root, "f").unwrap();
        let staged = stage(&placer, &s, &spot);
        assert!(
            matches!(staged, Staged::Unnamed(_)),
            "ext4/xfs/tmpfs have O_TMPFILE"
        );
        assert!(names(&s.dest_dir).is_empty() && names(&s.tmp_dir).is_empty());
        let stat = commit(staged, &s.staging, &spot, None).unwrap();
        let dest = s.dest_dir.join("f");
        assert_eq!(
            stat,
            Some(StatKey::of(&fs::symlink_metadata(&dest).unwrap()))
        );
        assert_eq!(fs::read(&dest).unwrap(), b"new content");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(names(&s.tmp_dir).is_empty());
    }

    #[test]
    fn a_new_file_never_clobbers_one_that_appeared() {
        let s = setup();
        let placer = Placer::default();
        let dest = s.dest_dir.join("f");
        fs::write(&dest, b"the user's").unwrap();
        let spot = Spot::beneath(&s.root, "f").unwrap();
        let staged = stage(&placer, &s, &spot);
        assert_eq!(commit(staged, &s.staging, &spot, None).unwrap(), None);
        assert_eq!(fs::read(&dest).unwrap(), b"the user's");
        assert_eq!(names(&s.dest_dir), ["f"]);
        assert!(names(&s.tmp_dir).is_empty());
    }

    #[test]
    fn a_replacement_goes_through_only_over_the_expected_file() {
        let s = setup();
        let placer = Placer::default();
        let dest = s.dest_dir.join("f");
        fs::write(&dest, b"old").unwrap();
        let spot = Spot::beneath(&s.root, "f").unwrap();
        let seen = spot.stat().unwrap();

        // Edited after the plan looked: kept, and nothing left behind.
        fs::write(&dest, b"edited by the user").unwrap();
        let staged = stage(&placer, &s, &spot);
        assert_eq!(commit(staged, &s.staging, &spot, seen).unwrap(), None);
        assert_eq!(fs::read(&dest).unwrap(), b"edited by the user");
        assert!(names(&s.tmp_dir).is_empty());
        assert_eq!(names(&s.dest_dir), ["f"]);

        // As the plan saw it: replaced.
        let seen = spot.stat().unwrap();
        let staged = stage(&placer, &s, &spot);
        assert!(commit(staged, &s.staging, &spot, seen).unwrap().is_some());
        assert_eq!(fs::read(&dest).unwrap(), b"new content");
        assert!(names(&s.tmp_dir).is_empty());
    }

    #[test]
    fn without_a_directory_the_file_is_staged_by_name() {
        let s = setup();
        let placer = Placer::default();
        let (staged, _) = placer
            .stage_file(&s.src, None, &s.staging, 11, 0o644)
            .unwrap();
        assert!(matches!(&staged, Staged::Named(_)));
        assert_eq!(names(&s.tmp_dir).len(), 1);
        let spot = Spot::beneath(&s.root, "f").unwrap();
        assert!(commit(staged, &s.staging, &spot, None).unwrap().is_some());
        assert_eq!(fs::read(s.dest_dir.join("f")).unwrap(), b"new content");
        assert!(names(&s.tmp_dir).is_empty());
    }

    /// The spot holds its directory: swapping that directory for a symlink
    /// after the spot was opened still lands the file in the directory,
    /// which now lies outside the symlink's reach, never behind the link.
    #[test]
    fn a_directory_swapped_after_the_spot_was_opened_does_not_redirect() {
        let s = setup();
        let placer = Placer::default();
        fs::create_dir(s.dest_dir.join("d")).unwrap();
        let outside = s.tmp_dir.parent().unwrap().join("outside");
        fs::create_dir(&outside).unwrap();
        let spot = Spot::beneath(&s.root, "d/f").unwrap();
        fs::rename(s.dest_dir.join("d"), s.dest_dir.join("d.moved")).unwrap();
        std::os::unix::fs::symlink(&outside, s.dest_dir.join("d")).unwrap();
        for staged in [
            stage(&placer, &s, &spot),
            placer
                .stage_file(&s.src, None, &s.staging, 11, 0o644)
                .unwrap()
                .0,
        ] {
            let _ = fs::remove_file(s.dest_dir.join("d.moved/f"));
            assert!(commit(staged, &s.staging, &spot, None).unwrap().is_some());
            assert!(names(&outside).is_empty());
            assert_eq!(
                fs::read(s.dest_dir.join("d.moved/f")).unwrap(),
                b"new content"
            );
        }
        // Opening a spot through the symlink is refused.
        let e = Spot::beneath(&s.root, "d/f").err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }
}
