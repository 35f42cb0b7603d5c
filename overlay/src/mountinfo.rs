//! `/proc/self/mountinfo`, read in one place: which mounts exist, where, of
//! what type and from what source (with the kernel's octal escapes undone).
//! The FUSE daemon asks it for the mounts below its own (to unbind them
//! first); the binary for whether a path is mounted and which workspace a
//! mount serves.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of mountinfo: the fields antares asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (byte-exact, escapes undone).
    pub mountpoint: PathBuf,
    /// The file system type, e.g. `fuse.antares` or `ext4`.
    pub fstype: String,
    /// The mount's source (what `mount` was given, e.g. `antares:…`).
    pub source: String,
}

/// The mounts of this process's namespace, in mount order (none if
/// mountinfo is unreadable).
pub fn read() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| parse(&text))
        .unwrap_or_default()
}

/// The mounts listed in mountinfo `text`; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPER
            let (left, right) = line.split_once(" - ")?;
            let mountpoint = PathBuf::from(OsString::from_vec(unescape(left.split(' ').nth(4)?)));
            let mut right = right.split(' ');
            let fstype = right.next()?.to_string();
            let source = String::from_utf8_lossy(&unescape(right.next()?)).into_owned();
            Some(Mount {
                mountpoint,
                fstype,
                source,
            })
        })
        .collect()
}

/// Whether something is mounted exactly at `p`.
pub fn is_mounted(p: &Path) -> bool {
    read().iter().any(|m| m.mountpoint == p)
}

/// Mount points strictly below `dir`, in mount order.
pub fn mounted_below(dir: &Path) -> Vec<PathBuf> {
    read()
        .into_iter()
        .map(|m| m.mountpoint)
        .filter(|m| m != dir && m.starts_with(dir))
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space, `\134` for a backslash).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        match oct {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_and_sources_lose_their_escapes() {
        let text = "\
22 1 8:1 / / rw - ext4 /dev/vda rw
90 22 0:50 / /tmp/a\\040b.mount rw,nosuid - fuse.antares antares-workspace:/tmp/a\\134b rw
91 90 8:1 / /tmp/a\\040b.mount/buck-out rw - ext4 /dev/vda rw
garbage
";
        let mounts = parse(text);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[1].mountpoint, Path::new("/tmp/a b.mount"));
        assert_eq!(mounts[1].fstype, "fuse.antares");
        assert_eq!(mounts[1].source, "antares-workspace:/tmp/a\\b");
        assert_eq!(mounts[2].mountpoint, Path::new("/tmp/a b.mount/buck-out"));
    }

    #[test]
    fn an_escape_out_of_byte_range_stays_as_written() {
        assert_eq!(unescape("a\\777b\\12"), b"a\\777b\\12");
        assert_eq!(unescape("\\303\\251"), "é".as_bytes());
    }
}
