//! BLAKE3 content hashes, the keys of the content store and of the manifest.

use std::fmt;

/// The BLAKE3 hash of a file's bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
/// A BLAKE3 hash of a file's bytes: the store's key.
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// Hashes a file by streaming it (memory-mapped for large files).
    pub fn of_file(path: &std::path::Path) -> std::io::Result<Self> {
        let mut hasher = blake3::Hasher::new();
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len >= 1 << 20 {
            hasher.update_mmap(path)?;
        } else {
            hasher.update_reader(file)?;
        }
        Ok(ContentHash(*hasher.finalize().as_bytes()))
    }

    /// Hashes the rest of an open file by streaming it.
    pub fn of_open(file: &std::fs::File) -> std::io::Result<Self> {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(file)?;
        Ok(ContentHash(*hasher.finalize().as_bytes()))
    }

    /// The hash as 64 lowercase hex chars.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex chars; `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(ContentHash(out))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blake3:{}", &self.to_hex()[..12])
    }
}
