//! Mono's wire formats: the JSON wrapping, listing items, raw git tree
//! bodies, and the git object hash every byte from the server is checked
//! against.

use crate::entry::{EntryKind, ObjectId};
use serde::Deserialize;
use sha1::Digest;

/// `{"req_result": bool, "data": ..., "err_message": string}`, Mono's
/// wrapping of every JSON answer except `latest-commit`.
#[derive(Debug, Deserialize)]
pub struct Wrapped<T> {
    /// Whether the request succeeded.
    pub req_result: bool,
    /// The answer, when it succeeded.
    pub data: Option<T>,
    /// Why it failed.
    #[serde(default)]
    pub err_message: Option<String>,
}

/// One item of `/tree/content-hash` and `/tree/dir-hash`.
#[derive(Debug, Deserialize)]
pub struct HashItem {
    pub name: String,
    /// `directory` or `file`.
    pub content_type: String,
    pub oid: String,
}

/// The part of `/latest-commit` antares uses.
#[derive(Debug, Deserialize)]
pub struct LatestCommit {
    pub oid: String,
}

/// One entry of a raw git tree: name, kind, exec bit, object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub name: String,
    pub kind: EntryKind,
    pub executable: bool,
    pub oid: ObjectId,
}

/// The git object id of an object of `kind` ("blob", "tree") with `body`:
/// SHA-1 for 40-hex ids, SHA-256 for 64-hex ones (git's two object formats).
pub fn object_id(kind: &str, body: &[u8], hex_len: usize) -> String {
    let header = format!("{kind} {}\0", body.len());
    if hex_len == 64 {
        let mut h = sha2::Sha256::new();
        h.update(header.as_bytes());
        h.update(body);
        hex::encode(h.finalize())
    } else {
        let mut h = sha1::Sha1::new();
        h.update(header.as_bytes());
        h.update(body);
        hex::encode(h.finalize())
    }
}

/// Checks that `body` is the object `oid` of `kind`.
pub fn verify(kind: &str, body: &[u8], oid: &ObjectId) -> Result<(), String> {
    let want = oid.as_str();
    let got = object_id(kind, body, want.len());
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "content does not match its object id: {} bytes hash to {kind} {got}, expected {want}",
            body.len()
        ))
    }
}

/// Parses a raw git tree body (`<octal mode> <name>\0<raw id>` repeated).
/// `id_len` is the raw id length (20 for SHA-1, 32 for SHA-256). Names are
/// returned as given (UTF-8 required); the caller validates them.
pub fn parse_tree(body: &[u8], id_len: usize) -> Result<Vec<RawEntry>, String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("truncated entry (no space after the mode)")?;
        let mode = std::str::from_utf8(&rest[..sp]).map_err(|_| "mode is not ASCII")?;
        rest = &rest[sp + 1..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("truncated entry (no NUL after the name)")?;
        let name = std::str::from_utf8(&rest[..nul])
            .map_err(|_| {
                format!(
                    "name {:?} is not valid UTF-8",
                    String::from_utf8_lossy(&rest[..nul])
                )
            })?
            .to_string();
        rest = &rest[nul + 1..];
        if rest.len() < id_len {
            return Err(format!("truncated object id of {name:?}"));
        }
        let oid = ObjectId::git(&hex::encode(&rest[..id_len]))
            .ok_or_else(|| format!("bad object id of {name:?}"))?;
        rest = &rest[id_len..];
        let (kind, executable) = EntryKind::from_git_mode(mode)
            .ok_or_else(|| format!("unsupported mode {mode:?} of {name:?}"))?;
        out.push(RawEntry {
            name,
            kind,
            executable,
            oid,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(entries: &[(&str, &str, [u8; 20])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (mode, name, id) in entries {
            v.extend_from_slice(mode.as_bytes());
            v.push(b' ');
            v.extend_from_slice(name.as_bytes());
            v.push(0);
            v.extend_from_slice(id);
        }
        v
    }

    #[test]
    fn hashes_like_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            object_id("blob", b"hello\n", 40),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // The empty tree.
        assert_eq!(
            object_id("tree", b"", 40),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        let oid = ObjectId::git("ce013625030ba8dba906f756967f9e9ca394464a").unwrap();
        assert!(verify("blob", b"hello\n", &oid).is_ok());
        let err = verify("blob", b"hellO\n", &oid).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn parses_modes() {
        let body = raw(&[
            ("100644", "a", [1; 20]),
            ("100755", "b", [2; 20]),
            ("120000", "c", [3; 20]),
            ("40000", "d", [4; 20]),
            ("160000", "e", [5; 20]),
        ]);
        let got = parse_tree(&body, 20).unwrap();
        let kinds: Vec<_> = got
            .iter()
            .map(|e| (e.name.as_str(), e.kind, e.executable))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a", EntryKind::File, false),
                ("b", EntryKind::File, true),
                ("c", EntryKind::Symlink, false),
                ("d", EntryKind::Dir, false),
                ("e", EntryKind::Gitlink, false),
            ]
        );
        assert_eq!(got[3].oid.as_str(), "04".repeat(20));
    }

    #[test]
    fn refuses_malformed_trees() {
        let good = raw(&[("100644", "a", [1; 20])]);
        assert!(parse_tree(&good[..good.len() - 1], 20).is_err());
        assert!(parse_tree(b"100644 a", 20).is_err());
        assert!(parse_tree(&raw(&[("777", "a", [1; 20])]), 20).is_err());
        let mut bad_utf8 = b"100644 \xff\0".to_vec();
        bad_utf8.extend_from_slice(&[0; 20]);
        assert!(parse_tree(&bad_utf8, 20).unwrap_err().contains("UTF-8"));
    }
}
