//! The sync's second step: decide, per path, what to do.
//!
//! [`plan`] is the decision table of `docs/architecture.md#sync-plan`
//! as a pure function of the three sides of a path: base (is there a
//! manifest record, and its stat), ours (what is on disk) and theirs (the
//! source's side). [`plan_rows`] applies it to every observed row and
//! reports what it leaves alone.

use super::observe::{Row, Theirs};
use super::{FailedPath, Summary};
use crate::fsutil::StatKey;
use crate::manifest::Version;
use crate::observe::{self, Observed};
use antares_overlay::{RepoPath, Source, TreeEntry};

/// Why the plan leaves a path alone (what the summary says of it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Left {
    /// Nothing to report.
    Quietly,
    /// A workspace edit the source did not touch.
    Modified,
    /// A workspace deletion the source did not touch (one-way sync).
    Deleted,
}

/// What the plan does at a path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing to place; `refresh`: the record's stat to update.
    Keep { refresh: Option<StatKey> },
    /// Place a new version; `expect` is the stat of the file it replaces
    /// (None: nothing there, never clobber).
    Place {
        version: Version,
        expect: Option<StatKey>,
    },
    /// Remove the file, if it still has stat `expect`.
    Remove { expect: StatKey },
    /// Drop the record (nothing on disk to remove).
    Forget,
    /// The workspace already holds the new version: record it.
    Adopt { version: Version, stat: StatKey },
    /// Changed on both sides: keep ours, record theirs (if any) beside it.
    Conflict { theirs: Option<Version> },
    /// A directory where a new file comes, with no record: a conflict,
    /// unless this sync's removals empty the directory (then placed).
    DirInTheWay { theirs: Version },
    /// Two-way: copy ours to the source side (`stat` as observed).
    WriteBack { version: Version, stat: StatKey },
    /// Two-way: a new workspace file, written back unless the source has
    /// something at that path that was not requested.
    WriteBackNew { version: Version, stat: StatKey },
    /// Two-way: delete on the source side what the user deleted here.
    DeleteBack,
    /// Leave the workspace and the record as they are.
    Leave(Left),
}

/// The decision at one path: `base` is the manifest record's stat (None:
/// no record), `ours` what is on disk, `theirs` the source's side, and
/// `two_way` whether workspace changes are written back.
pub(crate) fn plan(
    base: Option<StatKey>,
    ours: Observed,
    theirs: Theirs<Version>,
    two_way: bool,
) -> Action {
    let has_record = base.is_some();
    match (ours, theirs) {
        (Observed::Unchanged { stat }, Theirs::Same) => Action::Keep {
            refresh: (base != Some(stat)).then_some(stat),
        },
        (Observed::Unchanged { stat }, Theirs::New(version)) => Action::Place {
            version,
            expect: Some(stat),
        },
        (Observed::Unchanged { stat }, Theirs::Deleted | Theirs::Unrequested) => {
            Action::Remove { expect: stat }
        }
        (Observed::Missing, Theirs::Same) if two_way => Action::DeleteBack,
        (Observed::Missing, Theirs::Same) => Action::Leave(Left::Deleted),
        (Observed::Missing, Theirs::New(v)) if has_record => Action::Conflict { theirs: Some(v) },
        (Observed::Missing, Theirs::New(version)) => Action::Place {
            version,
            expect: None,
        },
        (Observed::Missing, Theirs::Deleted | Theirs::Unrequested) => Action::Forget,
        (Observed::Present { version, stat }, Theirs::Same | Theirs::Unrequested)
            if two_way && has_record =>
        {
            Action::WriteBack { version, stat }
        }
        (Observed::Present { version, stat }, Theirs::Deleted | Theirs::Unrequested)
            if two_way && !has_record =>
        {
            Action::WriteBackNew { version, stat }
        }
        (
            Observed::Present { .. } | Observed::Other { .. } | Observed::BehindSymlink,
            Theirs::Same,
        ) => Action::Leave(Left::Modified),
        (Observed::Present { version, stat }, Theirs::New(v)) => {
            if version.same_content(&v) {
                Action::Adopt { version: v, stat }
            } else {
                Action::Conflict { theirs: Some(v) }
            }
        }
        // Placing refuses the symlinked directory, with an error naming it.
        (Observed::BehindSymlink, Theirs::New(version)) => Action::Place {
            version,
            expect: None,
        },
        // The source turned a directory into a file: no conflict if the
        // removals of this sync empty it.
        (Observed::Other { what }, Theirs::New(v))
            if what == observe::A_DIRECTORY && !has_record =>
        {
            Action::DirInTheWay { theirs: v }
        }
        (Observed::Other { .. }, Theirs::New(v)) => Action::Conflict { theirs: Some(v) },
        (Observed::Present { .. } | Observed::Other { .. }, Theirs::Deleted) if has_record => {
            Action::Conflict { theirs: None }
        }
        (
            Observed::Present { .. } | Observed::Other { .. } | Observed::BehindSymlink,
            Theirs::Deleted | Theirs::Unrequested,
        ) => match has_record {
            true => Action::Leave(Left::Modified),
            false => Action::Leave(Left::Quietly),
        },
    }
}

/// [`plan`] over every observed row, in order. `version_of` gives a new
/// version once fetched (a row whose version is unknown was reported
/// when its fetch failed, and is left out). A row that could not be
/// observed, and a new workspace file the source has outside the synced
/// set, are reported in `summary` and left alone.
pub(crate) fn plan_rows(
    rows: Vec<Row>,
    version_of: impl Fn(&TreeEntry) -> Option<Version>,
    two_way: bool,
    source: &dyn Source,
    summary: &mut Summary,
) -> Vec<(RepoPath, Action)> {
    let mut actions = Vec::with_capacity(rows.len());
    for row in rows {
        let p = row.path;
        let ours = match row.ours {
            Ok(o) => o,
            Err(e) => {
                summary.errors.push(FailedPath {
                    path: p.to_string(),
                    error: format!("cannot inspect workspace file: {e}"),
                });
                continue;
            }
        };
        let theirs = match row.theirs {
            Theirs::Same => Theirs::Same,
            Theirs::New(e) => match version_of(e) {
                Some(v) => Theirs::New(v),
                None => continue, // fetch failed: already reported, leave all as is
            },
            Theirs::Deleted => Theirs::Deleted,
            Theirs::Unrequested => Theirs::Unrequested,
        };
        let action = match plan(row.base_stat, ours, theirs, two_way) {
            Action::WriteBackNew { version, stat } => match source.stat(&p) {
                Ok(None) => Action::WriteBack { version, stat },
                Ok(Some(_)) => {
                    summary.errors.push(FailedPath {
                        path: p.to_string(),
                        error: "created in the workspace, but the source has this path outside the synced set; not written back".into(),
                    });
                    Action::Leave(Left::Quietly)
                }
                Err(e) => {
                    summary.errors.push(FailedPath {
                        path: p.to_string(),
                        error: e.to_string(),
                    });
                    Action::Leave(Left::Quietly)
                }
            },
            Action::Leave(Left::Modified) => {
                summary.modified.push(p.to_string());
                Action::Leave(Left::Modified)
            }
            Action::Leave(Left::Deleted) => {
                summary.deleted.push(p.to_string());
                Action::Leave(Left::Deleted)
            }
            a => a,
        };
        actions.push((p, action));
    }
    actions
}

/// One test per row of the table in `docs/architecture.md#sync-plan`,
/// numbered as there.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ContentHash;
    use crate::manifest::Kind;
    use antares_overlay::ObjectId;

    fn stat(ino: u64) -> StatKey {
        StatKey {
            ino,
            size: 1,
            mode: 0o100644,
            mtime_ns: 1,
            ctime_ns: 1,
        }
    }

    fn version(content: &[u8]) -> Version {
        Version {
            kind: Kind::File,
            executable: false,
            size: content.len() as u64,
            hash: Some(ContentHash::of(content)),
            target: None,
            oid: ObjectId::git(&"a".repeat(40)).expect("a valid id"),
        }
    }

    const BASE: Option<StatKey> = Some(StatKey {
        ino: 1,
        size: 1,
        mode: 0o100644,
        mtime_ns: 1,
        ctime_ns: 1,
    });

    fn unchanged() -> Observed {
        Observed::Unchanged { stat: stat(1) }
    }

    fn present(content: &[u8]) -> Observed {
        Observed::Present {
            version: version(content),
            stat: stat(2),
        }
    }

    fn dir() -> Observed {
        Observed::Other {
            what: observe::A_DIRECTORY,
        }
    }

    /// Both directions give `want`.
    fn both(
        base: Option<StatKey>,
        ours: fn() -> Observed,
        theirs: fn() -> Theirs<Version>,
        want: Action,
    ) {
        assert_eq!(plan(base, ours(), theirs(), false), want, "one-way");
        assert_eq!(plan(base, ours(), theirs(), true), want, "two-way");
    }

    #[test]
    fn row_1_unchanged_and_same_keeps_refreshing_a_changed_stat() {
        both(
            BASE,
            unchanged,
            || Theirs::Same,
            Action::Keep { refresh: None },
        );
        let moved = Observed::Unchanged { stat: stat(9) };
        assert_eq!(
            plan(BASE, moved, Theirs::Same, false),
            Action::Keep {
                refresh: Some(stat(9))
            }
        );
    }

    #[test]
    fn row_2_unchanged_and_new_places_over_the_observed_file() {
        both(
            BASE,
            unchanged,
            || Theirs::New(version(b"v")),
            Action::Place {
                version: version(b"v"),
                expect: Some(stat(1)),
            },
        );
    }

    #[test]
    fn row_3_unchanged_and_gone_or_unrequested_removes() {
        for theirs in [|| Theirs::Deleted, || Theirs::Unrequested] {
            both(BASE, unchanged, theirs, Action::Remove { expect: stat(1) });
        }
    }

    #[test]
    fn row_4_deleted_here_only_is_left_one_way_and_deleted_back_two_way() {
        assert_eq!(
            plan(BASE, Observed::Missing, Theirs::Same, false),
            Action::Leave(Left::Deleted)
        );
        assert_eq!(
            plan(BASE, Observed::Missing, Theirs::Same, true),
            Action::DeleteBack
        );
    }

    #[test]
    fn row_5_deleted_here_and_changed_there_is_a_conflict() {
        both(
            BASE,
            || Observed::Missing,
            || Theirs::New(version(b"v")),
            Action::Conflict {
                theirs: Some(version(b"v")),
            },
        );
    }

    #[test]
    fn row_6_new_there_with_nothing_here_is_placed_without_clobbering() {
        both(
            None,
            || Observed::Missing,
            || Theirs::New(version(b"v")),
            Action::Place {
                version: version(b"v"),
                expect: None,
            },
        );
    }

    #[test]
    fn row_7_missing_and_gone_or_unrequested_is_forgotten() {
        for theirs in [|| Theirs::Deleted, || Theirs::Unrequested] {
            both(BASE, || Observed::Missing, theirs, Action::Forget);
        }
    }

    #[test]
    fn row_8_edited_here_only_is_left_one_way_and_written_back_two_way() {
        for theirs in [|| Theirs::Same, || Theirs::Unrequested] {
            assert_eq!(
                plan(BASE, present(b"ours"), theirs(), false),
                Action::Leave(Left::Modified)
            );
            assert_eq!(
                plan(BASE, present(b"ours"), theirs(), true),
                Action::WriteBack {
                    version: version(b"ours"),
                    stat: stat(2)
                }
            );
        }
    }

    #[test]
    fn row_9_a_new_workspace_file_is_left_one_way_and_offered_back_two_way() {
        for theirs in [|| Theirs::Deleted, || Theirs::Unrequested] {
            assert_eq!(
                plan(None, present(b"new"), theirs(), false),
                Action::Leave(Left::Quietly)
            );
            assert_eq!(
                plan(None, present(b"new"), theirs(), true),
                Action::WriteBackNew {
                    version: version(b"new"),
                    stat: stat(2)
                }
            );
        }
    }

    #[test]
    fn row_10_changed_on_both_sides_adopts_the_same_content_else_conflicts() {
        both(
            BASE,
            || present(b"v"),
            || Theirs::New(version(b"v")),
            Action::Adopt {
                version: version(b"v"),
                stat: stat(2),
            },
        );
        both(
            BASE,
            || present(b"ours"),
            || Theirs::New(version(b"theirs")),
            Action::Conflict {
                theirs: Some(version(b"theirs")),
            },
        );
    }

    #[test]
    fn row_11_edited_here_and_deleted_there_is_a_conflict() {
        both(
            BASE,
            || present(b"ours"),
            || Theirs::Deleted,
            Action::Conflict { theirs: None },
        );
        both(
            BASE,
            dir,
            || Theirs::Deleted,
            Action::Conflict { theirs: None },
        );
    }

    #[test]
    fn row_12_something_else_here_and_same_there_is_left_as_modified() {
        both(BASE, dir, || Theirs::Same, Action::Leave(Left::Modified));
        both(
            BASE,
            || Observed::BehindSymlink,
            || Theirs::Same,
            Action::Leave(Left::Modified),
        );
    }

    #[test]
    fn row_13_behind_a_symlinked_directory_a_new_version_goes_to_placing() {
        both(
            BASE,
            || Observed::BehindSymlink,
            || Theirs::New(version(b"v")),
            Action::Place {
                version: version(b"v"),
                expect: None,
            },
        );
    }

    #[test]
    fn row_14_a_directory_where_a_new_file_comes_waits_for_the_removals() {
        both(
            None,
            dir,
            || Theirs::New(version(b"v")),
            Action::DirInTheWay {
                theirs: version(b"v"),
            },
        );
        // With a record (the user made it a directory): a conflict.
        both(
            BASE,
            dir,
            || Theirs::New(version(b"v")),
            Action::Conflict {
                theirs: Some(version(b"v")),
            },
        );
    }

    #[test]
    fn row_15_something_else_here_and_gone_there_is_left() {
        both(
            BASE,
            || Observed::BehindSymlink,
            || Theirs::Deleted,
            Action::Leave(Left::Modified),
        );
        both(
            BASE,
            dir,
            || Theirs::Unrequested,
            Action::Leave(Left::Modified),
        );
        both(None, dir, || Theirs::Deleted, Action::Leave(Left::Quietly));
    }
}
