//! Switches that make the server misbehave the ways real networks and
//! servers do. Each can be flipped while the server runs; none touches the
//! `/_test` endpoints.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The fault switches of one server, all off at start.
#[derive(Default)]
pub struct Faults {
    fail_next: AtomicU32,
    fail_always: AtomicBool,
    /// 0 = off.
    blob_status: AtomicU32,
    delay_ms: AtomicU64,
    truncate_blobs: AtomicBool,
    corrupt_blobs: AtomicBool,
    malformed_json: AtomicBool,
    hostile_name: Mutex<Option<String>>,
    prefix_ids: AtomicBool,
}

impl Faults {
    /// The next `n` requests answer HTTP 500.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every request answers HTTP 500 while on.
    pub fn fail_always(&self, on: bool) {
        self.fail_always.store(on, Ordering::SeqCst);
    }

    /// Blob requests answer this status instead of the blob.
    pub fn status_for_blobs(&self, status: Option<u16>) {
        self.blob_status
            .store(status.map_or(0, u32::from), Ordering::SeqCst);
    }

    /// Every answer waits this long first.
    pub fn delay(&self, d: Duration) {
        self.delay_ms
            .store(d.as_millis().min(u64::MAX as u128) as u64, Ordering::SeqCst);
    }

    /// Blob answers promise the full length, send half, and break off.
    pub fn truncate_blobs(&self, on: bool) {
        self.truncate_blobs.store(on, Ordering::SeqCst);
    }

    /// Blob answers have the right length and the wrong bytes.
    pub fn corrupt_blobs(&self, on: bool) {
        self.corrupt_blobs.store(on, Ordering::SeqCst);
    }

    /// JSON answers are HTTP 200 with a body that is not JSON.
    pub fn malformed_json(&self, on: bool) {
        self.malformed_json.store(on, Ordering::SeqCst);
    }

    /// Every `content-hash` listing gets one more "file" with this name.
    pub fn hostile_name(&self, name: Option<String>) {
        *self.hostile_name.lock().unwrap_or_else(|p| p.into_inner()) = name;
    }

    /// Object ids in the CL files list come `sha1:`-prefixed, as some Mono
    /// versions write them.
    pub fn prefix_ids(&self, on: bool) {
        self.prefix_ids.store(on, Ordering::SeqCst);
    }

    pub(crate) fn prefixing_ids(&self) -> bool {
        self.prefix_ids.load(Ordering::SeqCst)
    }

    /// Whether this request fails with a 500 (and counts one of `fail_next`).
    pub(crate) fn take_failure(&self) -> bool {
        if self.fail_always.load(Ordering::SeqCst) {
            return true;
        }
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    pub(crate) fn blob_status(&self) -> Option<u16> {
        match self.blob_status.load(Ordering::SeqCst) {
            0 => None,
            s => u16::try_from(s).ok(),
        }
    }

    pub(crate) fn current_delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))
    }

    pub(crate) fn truncating(&self) -> bool {
        self.truncate_blobs.load(Ordering::SeqCst)
    }

    pub(crate) fn corrupting(&self) -> bool {
        self.corrupt_blobs.load(Ordering::SeqCst)
    }

    pub(crate) fn malformed(&self) -> bool {
        self.malformed_json.load(Ordering::SeqCst)
    }

    pub(crate) fn hostile(&self) -> Option<String> {
        self.hostile_name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
