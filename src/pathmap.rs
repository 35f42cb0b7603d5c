//! Paths across the mount and its workspace, for editor tooling.
//!
//! Tools that make a project model (buck2's `rust-project`, the compilation
//! database BXL) run in the workspace and answer with its absolute paths;
//! an editor on the mount must get mount paths, and its requests name mount
//! paths that must reach buck2 as workspace paths. Both roots are absolute
//! directory paths, so a path is under one when the root is followed by `/`
//! or ends the path; in a longer string (`-I/ws/x`, JSON) the same holds at
//! each occurrence.

use std::path::Path;

/// The two roots of one tree.
#[derive(Debug, Clone)]
pub struct PathMap {
    pub workspace: String,
    pub mount: String,
}

impl PathMap {
    pub fn new(workspace: &Path, mount: &Path) -> PathMap {
        PathMap {
            workspace: workspace.to_string_lossy().into_owned(),
            mount: mount.to_string_lossy().into_owned(),
        }
    }

    /// A request's text with mount paths made workspace paths.
    pub fn to_workspace(&self, text: &str) -> String {
        replace_root(text, &self.mount, &self.workspace)
    }

    /// An answer's text with workspace paths made mount paths.
    pub fn to_mount(&self, text: &str) -> String {
        replace_root(text, &self.workspace, &self.mount)
    }

    /// Every string in a JSON value, made mount paths.
    pub fn json_to_mount(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.to_mount(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| self.json_to_mount(v)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|v| self.json_to_mount(v)),
            _ => {}
        }
    }
}

/// Replaces each occurrence of the directory `from` that is a whole path
/// prefix (followed by `/`, the end, or a character no path component
/// continues with) by `to`.
fn replace_root(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() || from == "/" {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        let whole = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '~')));
        out.push_str(&rest[..i]);
        out.push_str(if whole { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_roots_only_in_both_directions() {
        let m = PathMap::new(Path::new("/w/ws"), Path::new("/w/ws.mount"));
        assert_eq!(
            m.to_mount("/w/ws/rust/src/lib.rs"),
            "/w/ws.mount/rust/src/lib.rs"
        );
        assert_eq!(m.to_mount("/w/ws"), "/w/ws.mount");
        assert_eq!(
            m.to_mount("-I/w/ws/inc:/w/ws2/x"),
            "-I/w/ws.mount/inc:/w/ws2/x"
        );
        assert_eq!(m.to_mount("/w/wsx/a"), "/w/wsx/a");
        assert_eq!(
            m.to_workspace(r#"{"path":"/w/ws.mount/a.rs"}"#),
            r#"{"path":"/w/ws/a.rs"}"#
        );
        assert_eq!(m.to_workspace("/w/ws/a.rs"), "/w/ws/a.rs");
        let mut v =
            serde_json::json!({"directory": "/w/ws", "arguments": ["@buck-out/x", "/w/ws/a.c"]});
        m.json_to_mount(&mut v);
        assert_eq!(v["directory"], "/w/ws.mount");
        assert_eq!(v["arguments"][1], "/w/ws.mount/a.c");
        assert_eq!(v["arguments"][0], "@buck-out/x");
    }
}
