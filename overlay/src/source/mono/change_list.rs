//! Mono's change lists: `GET /api/v1/cl/{link}/files-list` and the blobs
//! it names, turned into a [`ChangeList`] for [`crate::source::cl::ClSource`].

use super::{git_oid, unwrap_json, MonoSource};
use crate::entry::{EntryKind, TreeEntry};
use crate::error::{Result, SourceError};
use crate::path::RepoPath;
use crate::source::cl::{ChangeList, ClFile};
use crate::source::{is_excluded_path, Source};
use serde::Deserialize;
use std::sync::Mutex;

/// One item of `files-list` (Mono's `ClFilesRes`; `similarity` unused).
#[derive(Debug, Deserialize)]
struct ClFileItem {
    path: String,
    sha: String,
    action: String,
    #[serde(default)]
    old_path: Option<String>,
}

impl MonoSource {
    /// The change list `link` of this server: its files list, and the
    /// content of every new, modified and renamed file, each verified
    /// against its blob id. Fails naming the CL and the item on an unknown
    /// CL, an unknown action or a path that could escape the tree.
    pub fn change_list(&self, link: &str) -> Result<ChangeList> {
        let valid = !link.is_empty()
            && link
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(SourceError::Invalid {
                path: format!("cl {link:?}"),
                message: "a change list link is letters, digits, '-', '_' and '.'".into(),
            });
        }
        let url = self.http.url(&format!("/api/v1/cl/{link}/files-list"), &[]);
        let body = self
            .rt
            .block_on(self.http.get(&url, None))
            .map_err(|e| match e {
                SourceError::Remote { url, message } if message.starts_with("HTTP 404") => {
                    SourceError::Remote {
                        url,
                        message: format!("no change list {link:?} on this server ({message})"),
                    }
                }
                e => e,
            })?;
        let items: Vec<ClFileItem> = unwrap_json(&url, &body)?.unwrap_or_default();
        let mut cl = ChangeList::default();
        let mut wanted = Vec::new();
        let mut mode_of = std::collections::HashMap::new();
        for it in items {
            let Some(path) = cl_path(&url, &it.path)? else {
                continue;
            };
            match it.action.as_str() {
                "new" | "modified" | "renamed" => {
                    if it.action == "renamed" {
                        let old = it.old_path.as_deref().ok_or_else(|| SourceError::Remote {
                            url: url.clone(),
                            message: format!("{}: renamed without old_path", it.path),
                        })?;
                        if let Some(old) = cl_path(&url, old)? {
                            mode_of.insert(path.clone(), old.clone());
                            cl.whiteouts.insert(old);
                        }
                    }
                    wanted.push(TreeEntry {
                        oid: git_oid(&url, &it.path, &it.sha)?,
                        path,
                        kind: EntryKind::File,
                        executable: false,
                        size: None,
                    });
                }
                "deleted" => {
                    cl.whiteouts.insert(path);
                }
                other => {
                    return Err(SourceError::Remote {
                        url,
                        message: format!("{}: unknown action {other:?}", it.path),
                    })
                }
            }
        }
        let fetched = Mutex::new(Vec::with_capacity(wanted.len()));
        self.read_many(&wanted, &|e, r| {
            if let Ok(mut v) = fetched.lock() {
                v.push((e.clone(), r));
            }
        });
        for (e, r) in fetched.into_inner().unwrap_or_else(|p| p.into_inner()) {
            let content = r?;
            cl.whiteouts.remove(&e.path);
            let mode_of = mode_of.remove(&e.path).unwrap_or_else(|| e.path.clone());
            cl.files.insert(
                e.path,
                ClFile {
                    oid: e.oid,
                    content,
                    mode_of,
                },
            );
        }
        if cl.files.len() != wanted.len() {
            return Err(SourceError::Remote {
                url,
                message: "some files of the change list could not be fetched".into(),
            });
        }
        tracing::info!(
            link,
            files = cl.files.len(),
            whiteouts = cl.whiteouts.len(),
            "change list loaded"
        );
        Ok(cl)
    }
}

/// A path of the files list (`a/b`, `/a/b`) as a repository path, refusing
/// what could escape; `None` (skipped, with a warning) for what antares
/// never places (`.git`, and at the root `buck-out` and `.antares`), as
/// every source leaves those out.
fn cl_path(url: &str, p: &str) -> Result<Option<RepoPath>> {
    let path = RepoPath::new(p.trim_start_matches('/')).map_err(|error| SourceError::BadPath {
        origin: url.to_string(),
        error,
    })?;
    if path.is_root() {
        return Err(SourceError::Remote {
            url: url.to_string(),
            message: format!("{p:?} is not a file path"),
        });
    }
    if is_excluded_path(&path) {
        tracing::warn!(
            url,
            path = p,
            "skipping a change list entry antares never places"
        );
        return Ok(None);
    }
    Ok(Some(path))
}
