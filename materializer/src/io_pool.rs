//! A thread pool for blocking file-system work.
//!
//! Placing and writing back are mostly waits on the kernel and the disk (a
//! rename over a file on a `discard` mount trims the old file's blocks
//! synchronously), not CPU. With a pool the size of the core count, those
//! waits do not overlap: on two cores, placing 1,000 files took half the
//! time with eight threads.

use std::sync::OnceLock;

/// Threads per core for blocking work, and the bounds of the total.
const PER_CORE: usize = 4;
const MIN_THREADS: usize = 8;
const MAX_THREADS: usize = 32;

/// Runs `work` over `items` items on the I/O pool: its rayon parallel
/// iterators use the pool's threads. With no items (a no-op sync) no pool
/// is started: eight threads spinning up and idling for nothing were a
/// visible part of a no-op's time on two cores. Falls back to the caller's
/// pool if threads cannot be started.
pub fn install<R: Send>(items: usize, work: impl FnOnce() -> R + Send) -> R {
    if items == 0 {
        return work();
    }
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads((cores * PER_CORE).clamp(MIN_THREADS, MAX_THREADS))
            .thread_name(|i| format!("antares-io-{i}"))
            .build()
            .map_err(|e| tracing::warn!("no I/O thread pool, using the default one: {e}"))
            .ok()
    });
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}
