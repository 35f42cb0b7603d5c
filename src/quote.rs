//! Paths in human-readable output, quoted the way `git status` does, so
//! that a name with a newline or a quote cannot pass for other entries.

use std::borrow::Cow;

/// `path` as is when it holds only printable ASCII other than `"` and
/// `\`; else in double quotes with C escapes (`\n`, `\t`, `\"`, `\\`, …)
/// and other bytes as three octal digits (git's `core.quotePath`).
pub fn quoted(path: &str) -> Cow<'_, str> {
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    if path.bytes().all(plain) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 2);
    out.push('"');
    for b in path.bytes() {
        match b {
            b'\x07' => out.push_str("\\a"),
            b'\x08' => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\x0b' => out.push_str("\\v"),
            b'\x0c' => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b if plain(b) => out.push(b as char),
            b => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// [`quoted`], with the middle of a path longer than 200 bytes left out
/// (`…`): a message about a 4,000-byte path must still be readable.
pub fn shown(path: &str) -> Cow<'_, str> {
    const KEEP: usize = 80;
    if path.len() <= 200 {
        return quoted(path);
    }
    let head = (0..=KEEP)
        .rev()
        .find(|&i| path.is_char_boundary(i))
        .unwrap_or(0);
    let tail = (path.len() - KEEP..=path.len())
        .find(|&i| path.is_char_boundary(i))
        .unwrap_or(path.len());
    Cow::Owned(format!(
        "{}…{} ({} bytes)",
        quoted(&path[..head]),
        quoted(&path[tail..]),
        path.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::{quoted, shown};

    #[test]
    fn a_long_path_is_shown_shortened() {
        let long = format!("{}/x.txt", "d".repeat(5000));
        let s = shown(&long);
        assert!(s.len() < 200 && s.ends_with("/x.txt (5006 bytes)"), "{s}");
        assert_eq!(shown("a/b"), "a/b");
    }

    #[test]
    fn quotes_what_git_quotes() {
        assert_eq!(quoted("a/b c.txt"), "a/b c.txt");
        assert_eq!(quoted("M fake\nA"), r#""M fake\nA""#);
        assert_eq!(quoted(r#"q"\"#), r#""q\"\\""#);
        assert_eq!(quoted("é\x01\x7f"), r#""\303\251\001\177""#);
    }
}
