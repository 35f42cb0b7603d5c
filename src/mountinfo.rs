//! `/proc/self/mountinfo`, read in one place: which mounts exist, where, of
//! what type and from what source (with the kernel's octal escapes undone).

use std::path::{Path, PathBuf};

/// One line of mountinfo: the fields antares asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mountpoint: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// The mounts of this process's namespace (none if mountinfo is unreadable).
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
            let mountpoint = PathBuf::from(unescape(left.split(' ').nth(4)?));
            let mut right = right.split(' ');
            let fstype = right.next()?.to_string();
            let source = unescape(right.next()?);
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

/// mountinfo's octal escapes (`\040` for a space, …).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_and_sources_lose_their_escapes() {
        let text = "\
22 1 8:1 / / rw - ext4 /dev/vda rw
90 22 0:50 / /tmp/a\\040b.mount rw,nosuid - fuse.antares antares-workspace:/tmp/a\\134b rw
garbage
";
        let mounts = parse(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1].mountpoint, Path::new("/tmp/a b.mount"));
        assert_eq!(mounts[1].fstype, "fuse.antares");
        assert_eq!(mounts[1].source, "antares-workspace:/tmp/a\\b");
    }
}
