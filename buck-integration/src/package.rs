//! Packages on disk: which directory is one (it holds the cell's build
//! file), which files belong to it (everything below, down to sub-package
//! and other cells' boundaries, minus ignored paths), and which packages
//! lie under a directory (`//dir/...`).

use crate::cells::{Cell, Cells};
use crate::tree::Tree;
use antares_overlay::{EntryKind, RepoPath, SourceError, TreeEntry};

pub(crate) struct Layout<'a, 's> {
    pub tree: &'a Tree<'s>,
    pub cells: &'a Cells,
}

impl Layout<'_, '_> {
    /// The build file of `dir` (a project path) in `cell`, if it is a package.
    pub fn buildfile(&self, cell: &Cell, dir: &RepoPath) -> Result<Option<RepoPath>, SourceError> {
        if self.cells.ignore.covers(dir) {
            return Ok(None);
        }
        let listing = self.tree.list(dir)?;
        for name in &cell.buildfiles {
            let found = listing
                .iter()
                .find(|e| e.path.file_name() == Some(name.as_str()) && e.kind != EntryKind::Dir);
            if let Some(e) = found {
                return Ok(Some(e.path.clone()));
            }
        }
        Ok(None)
    }

    /// Whether a walk of `cell` stops at `dir`: ignored, another cell's root,
    /// or (with `stop_at_packages`) a sub-package.
    fn boundary(
        &self,
        cell: &Cell,
        dir: &RepoPath,
        stop_at_packages: bool,
    ) -> Result<bool, SourceError> {
        Ok(self.cells.ignore.matches(dir)
            || self.cells.is_other_cell_root(dir, cell)
            || (stop_at_packages && self.buildfile(cell, dir)?.is_some()))
    }

    /// Every file and symlink of the package at `dir`.
    pub fn package_entries(
        &self,
        cell: &Cell,
        dir: &RepoPath,
    ) -> Result<Vec<TreeEntry>, SourceError> {
        self.walk(cell, dir, true)
    }

    /// Every file and symlink below `dir`, crossing package boundaries but
    /// not other cells' (a vendored prelude, a symlinked directory).
    pub fn all_entries(&self, cell: &Cell, dir: &RepoPath) -> Result<Vec<TreeEntry>, SourceError> {
        self.walk(cell, dir, false)
    }

    fn walk(
        &self,
        cell: &Cell,
        dir: &RepoPath,
        stop_at_packages: bool,
    ) -> Result<Vec<TreeEntry>, SourceError> {
        let mut out = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in self.tree.list(&d)?.iter() {
                if self.cells.ignore.matches(&e.path) {
                    continue;
                }
                match e.kind {
                    EntryKind::Dir => {
                        if !self.boundary(cell, &e.path, stop_at_packages)? {
                            stack.push(e.path.clone());
                        }
                    }
                    EntryKind::File | EntryKind::Symlink => out.push(e.clone()),
                    EntryKind::Gitlink => {}
                }
            }
        }
        Ok(out)
    }

    /// Every package directory at or below `dir` in `cell`.
    pub fn packages_under(
        &self,
        cell: &Cell,
        dir: &RepoPath,
    ) -> Result<Vec<RepoPath>, SourceError> {
        let mut out = Vec::new();
        if self.cells.ignore.covers(dir) {
            return Ok(out);
        }
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            if self.buildfile(cell, &d)?.is_some() {
                out.push(d.clone());
            }
            for e in self.tree.list(&d)?.iter() {
                if e.kind == EntryKind::Dir && !self.boundary(cell, &e.path, false)? {
                    stack.push(e.path.clone());
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
