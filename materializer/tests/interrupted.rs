//! A sync killed while placing, then a sync to another revision: the files
//! the killed run placed are recognised as antares' own (no false
//! conflicts), and the ones the new revision no longer has are removed.

mod common;

use antares_materializer::{sync, NoProgress, Progress, Request};
use antares_overlay::RepoPath;
use common::{env, MemSource};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Progress that dies (panics, as a kill would stop the process) after
/// `after` files were placed.
struct DieWhilePlacing {
    phase: Mutex<&'static str>,
    placed: AtomicU64,
    after: u64,
}

impl Progress for DieWhilePlacing {
    fn phase(&self, name: &'static str, _: u64) {
        *self.phase.lock().unwrap() = name;
    }
    fn advance(&self, n: u64) {
        if *self.phase.lock().unwrap() == "placing"
            && self.placed.fetch_add(n, Ordering::SeqCst) + n >= self.after
        {
            panic!("killed while placing");
        }
    }
}

fn request(src: &MemSource) -> Request<'static> {
    Request {
        entries: src.entries(),
        scope: vec![RepoPath::root()],
        ..Default::default()
    }
}

#[test]
fn a_sync_killed_while_placing_then_a_sync_to_another_revision_converges() {
    let e = env();
    let src = MemSource::default();
    for i in 0..40 {
        src.put(&format!("d/f{i:02}.txt"), &format!("rev A {i}"));
    }
    sync(&e.layout, &e.store, &src, request(&src), &NoProgress).unwrap();

    // Revision B: every file changed, ten new ones; killed part way.
    for i in 0..40 {
        src.put(&format!("d/f{i:02}.txt"), &format!("rev B {i}"));
    }
    for i in 0..10 {
        src.put(&format!("new/n{i}.txt"), &format!("new in B {i}"));
    }
    let dying = DieWhilePlacing {
        phase: Mutex::new(""),
        placed: AtomicU64::new(0),
        after: 35,
    };
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sync(&e.layout, &e.store, &src, request(&src), &dying)
    }));
    assert!(killed.is_err(), "the sync was not interrupted");

    // Revision C: half the files changed again, B's new files gone.
    for i in (0..40).step_by(2) {
        src.put(&format!("d/f{i:02}.txt"), &format!("rev C {i}"));
    }
    for i in 0..10 {
        src.remove(&format!("new/n{i}.txt"));
    }
    let s = sync(&e.layout, &e.store, &src, request(&src), &NoProgress).unwrap();
    assert!(s.conflicts.is_empty(), "false conflicts: {:?}", s.conflicts);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    for i in 0..40 {
        let want = src.content(&format!("d/f{i:02}.txt")).unwrap();
        let got = std::fs::read_to_string(e.layout.root().join(format!("d/f{i:02}.txt"))).unwrap();
        assert_eq!(got, want);
    }
    assert!(
        !e.layout.root().join("new").exists(),
        "files the killed sync placed were left behind"
    );
}
