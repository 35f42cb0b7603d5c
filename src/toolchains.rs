//! `--toolchains system|auto`: the generated `antares-toolchains` cell.
//!
//! antares-buck reads the repository's toolchains cell and renders a stand-in
//! build file; this module decides which toolchains to replace (all those a
//! system rule can stand in for, or with `auto` only those whose downloads
//! are unreachable), finds the machine's tools, and writes the cell into the
//! workspace: the repository's cell files as they are, its build file
//! rewritten. The workspace's managed `.buckconfig.local` then points
//! `[cells] toolchains` at it (see `buckconfig_local`). The cell is never
//! synced back: it is antares' own, like `.buckconfig.local`.

use antares_buck::toolchains::{self, quote, Replacement, Role, Toolchain, ToolchainsCell};
use antares_materializer::fsutil::write_atomic_in;
use antares_materializer::layout::STATE_DIR;
use antares_overlay::{EntryKind, RepoPath, Source};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The generated cell's directory in the workspace.
pub const CELL_DIR: &str = "antares-toolchains";

/// The report of the last sync's generation, read by `antares graph --toolchains`.
const REPORT: &str = "toolchains.json";

/// Verdicts of the `auto` reachability probes, by host.
const PROBES: &str = "toolchains-probes.json";

/// How long a probe's verdict is trusted.
const PROBE_TTL: Duration = Duration::from_secs(3600);

/// How long a probe waits for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which toolchains a workspace builds with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The repository's own toolchains cell, unchanged.
    Repo,
    /// Every toolchain a prelude system rule can stand in for uses the
    /// machine's tools.
    System,
    /// Only toolchains whose downloads cannot be reached use the machine's tools.
    Auto,
}

/// What happened to one toolchain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub name: String,
    /// The rule the repository declares it with.
    pub rule: String,
    /// The system rule it now uses, when replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_rule: Option<String>,
    /// The tool the system rule runs (an absolute path found on PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Why it was kept, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<String>,
}

/// The generation's outcome, saved for `antares graph --toolchains`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub mode: Mode,
    /// The cell name `[cells]` points at the generated directory.
    pub cell: String,
    /// The repository's toolchains build file.
    pub buildfile: String,
    pub cell_dir: String,
    pub toolchains: Vec<Decision>,
    pub warnings: Vec<String>,
}

/// Generates (or, in `Repo` mode, removes) the cell. Returns the report
/// when a cell was written: the caller points `[cells] toolchains` at it.
pub fn apply(ws_root: &Path, source: &dyn Source, mode: Mode) -> Result<Option<Report>> {
    let state = ws_root.join(STATE_DIR);
    if mode == Mode::Repo {
        // Only a cell antares generated (its report says so) is removed.
        if state.join(REPORT).is_file() {
            remove_cell(ws_root)?;
            std::fs::remove_file(state.join(REPORT))
                .with_context(|| format!("cannot remove {}", state.join(REPORT).display()))?;
        }
        return Ok(None);
    }
    if source.stat(&RepoPath::new(CELL_DIR)?)?.is_some() {
        bail!("the repository has its own {CELL_DIR}/: antares cannot generate its toolchains cell there; use --toolchains repo");
    }
    let Some(cell) = toolchains::discover(source)? else {
        bail!(
            "--toolchains {}: {} has no toolchains cell in its tree to stand in for",
            mode_name(mode),
            source.describe()
        );
    };
    if cell.dir.is_root() {
        bail!("--toolchains {}: the toolchains cell is the repository's root; antares only stands in for a cell of its own directory", mode_name(mode));
    }
    let probes = Probes::load(&state);
    let (replace, decisions) = decide(&cell, mode, &probes);
    probes.save(&state)?;
    write_cell(ws_root, source, &cell, &toolchains::render(&cell, &replace))?;
    let report = Report {
        mode,
        cell: cell.name.clone(),
        buildfile: cell.buildfile.to_string(),
        cell_dir: CELL_DIR.to_string(),
        toolchains: decisions,
        warnings: cell.warnings.clone(),
    };
    write_atomic_in(
        &state.join(REPORT),
        &serde_json::to_vec_pretty(&report)?,
        &state,
    )?;
    Ok(Some(report))
}

/// The report of the last generation, if any.
pub fn last_report(ws_root: &Path) -> Result<Option<Report>> {
    let path = ws_root.join(STATE_DIR).join(REPORT);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).with_context(|| format!("{}: invalid", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// One line per replaced toolchain, for a sync's report (on stderr).
pub fn print_summary(r: &Report) {
    let replaced: Vec<String> = r
        .toolchains
        .iter()
        .filter(|d| d.system_rule.is_some())
        .map(|d| d.name.clone())
        .collect();
    eprintln!(
        "toolchains ({}): {} replaced by system rules in {}/ ({}); `antares graph --toolchains` lists them all",
        mode_name(r.mode),
        replaced.len(),
        r.cell_dir,
        if replaced.is_empty() { "none".to_string() } else { replaced.join(", ") }
    );
}

/// Prints the report for people.
pub fn print_report(r: &Report) {
    println!(
        "toolchains ({}): {} stands in for {}",
        mode_name(r.mode),
        r.cell_dir,
        r.buildfile
    );
    for d in &r.toolchains {
        match (&d.system_rule, &d.kept_because) {
            (Some(sys), _) => println!(
                "  replaced {:<20} {} -> {} ({})",
                d.name,
                d.rule,
                sys,
                d.tool.as_deref().unwrap_or("-")
            ),
            (None, Some(why)) => println!("  kept     {:<20} {} ({why})", d.name, d.rule),
            (None, None) => println!("  kept     {:<20} {}", d.name, d.rule),
        }
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Repo => "repo",
        Mode::System => "system",
        Mode::Auto => "auto",
    }
}

/// Which toolchains to replace, and why each other one is kept.
fn decide(
    cell: &ToolchainsCell,
    mode: Mode,
    probes: &Probes,
) -> (BTreeMap<String, Replacement>, Vec<Decision>) {
    let mut replace = BTreeMap::new();
    let mut decisions = Vec::new();
    for t in &cell.toolchains {
        let mut d = Decision {
            name: t.name.clone(),
            rule: t.rule.clone(),
            system_rule: None,
            tool: None,
            kept_because: None,
        };
        let verdict = match t.role {
            None => Err("no system rule provides the same".to_string()),
            Some(role) => match machine_tools(role) {
                Err(missing) => Err(missing),
                Ok((tool, attrs)) => {
                    let unreachable: Vec<&String> =
                        t.urls.iter().filter(|u| !probes.reachable(u)).collect();
                    let absent = absent_default_tools(t, role);
                    if mode == Mode::Auto && unreachable.is_empty() && absent.is_empty() {
                        Err(if t.urls.is_empty() {
                            "downloads nothing".to_string()
                        } else {
                            "its downloads are reachable".to_string()
                        })
                    } else {
                        Ok((role, tool, attrs))
                    }
                }
            },
        };
        match verdict {
            Ok((role, tool, attrs)) => {
                d.system_rule = Some(role.system_rule().1.to_string());
                d.tool = Some(tool.display().to_string());
                replace.insert(t.name.clone(), Replacement { attrs });
            }
            Err(why) => d.kept_because = Some(why),
        }
        decisions.push(d);
    }
    (replace, decisions)
}

/// Tools a toolchain already declared with a system rule runs that are not
/// on the machine: `--toolchains auto` replaces it too (buck2's demo
/// `system_cxx_toolchain` defaults to `clang`/`clang++`, which a machine
/// with only gcc lacks; offline or not, that build cannot link).
fn absent_default_tools(t: &Toolchain, role: Role) -> Vec<String> {
    if !t.rule.starts_with("system_") || role != Role::Cxx {
        return Vec::new();
    }
    // The prelude's defaults on Linux (toolchains/cxx.bzl).
    [
        ("compiler", "clang"),
        ("cxx_compiler", "clang++"),
        ("linker", "clang++"),
    ]
    .iter()
    .map(|(attr, default)| t.string_attr(attr).unwrap_or(default))
    .filter(|tool| {
        if tool.contains('/') {
            !Path::new(tool).is_file()
        } else {
            which(tool).is_none()
        }
    })
    .map(str::to_string)
    .collect()
}

/// The machine's tool for `role` and the attributes that select it, or why
/// there is none.
fn machine_tools(role: Role) -> std::result::Result<(PathBuf, Vec<(String, String)>), String> {
    let attr = |k: &str, v: &str| (k.to_string(), quote(v));
    let one = |name: &str| which(name).ok_or_else(|| format!("no {name} on PATH"));
    match role {
        Role::Cxx => {
            // gcc first: the prelude links with lld unless the linker is g++.
            if let (Some(cc), Some(_)) = (which("gcc"), which("g++")) {
                return Ok((
                    cc,
                    vec![
                        attr("compiler", "gcc"),
                        attr("cxx_compiler", "g++"),
                        attr("linker", "g++"),
                        attr("compiler_type", "gcc"),
                    ],
                ));
            }
            match (which("clang"), which("clang++"), which("ld.lld")) {
                (Some(cc), Some(_), Some(_)) => Ok((
                    cc,
                    vec![
                        attr("compiler", "clang"),
                        attr("cxx_compiler", "clang++"),
                        attr("linker", "clang++"),
                        attr("compiler_type", "clang"),
                    ],
                )),
                _ => Err("no gcc/g++, nor clang/clang++ with ld.lld, on PATH".to_string()),
            }
        }
        Role::Python | Role::PythonBootstrap => {
            one("python3").map(|p| (p, vec![attr("interpreter", "python3")]))
        }
        Role::Rust => one("rustc").map(|p| (p, Vec::new())),
        Role::Go | Role::GoBootstrap => one("go").map(|p| (p, Vec::new())),
        Role::Genrule => one("sh").map(|p| (p, Vec::new())),
    }
}

/// The first executable `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Reachability of download hosts: a TCP connection to the URL's host and
/// port within [`PROBE_TIMEOUT`]. It tells a closed network or a dead host
/// from a live one (what makes hermetic toolchains fail offline), not a
/// missing file on a live host. Verdicts are kept for [`PROBE_TTL`].
struct Probes {
    verdicts: std::cell::RefCell<BTreeMap<String, (bool, u64)>>,
}

impl Probes {
    fn load(state: &Path) -> Probes {
        let verdicts = std::fs::read(state.join(PROBES))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Probes {
            verdicts: std::cell::RefCell::new(verdicts),
        }
    }

    fn save(&self, state: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&*self.verdicts.borrow())?;
        write_atomic_in(&state.join(PROBES), &bytes, state)?;
        Ok(())
    }

    fn reachable(&self, url: &str) -> bool {
        let Some(host) = host_port(url) else {
            return false;
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Some((ok, at)) = self.verdicts.borrow().get(&host) {
            if now.saturating_sub(*at) < PROBE_TTL.as_secs() {
                return *ok;
            }
        }
        let ok = host
            .to_socket_addrs()
            .map(|mut addrs| addrs.any(|a| TcpStream::connect_timeout(&a, PROBE_TIMEOUT).is_ok()))
            .unwrap_or(false);
        tracing::info!(host, ok, "probed a toolchain download host");
        self.verdicts.borrow_mut().insert(host, (ok, now));
        ok
    }
}

/// `host:port` of an http(s) URL.
fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    Some(if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:{port}")
    })
}

/// Writes the cell: every file of the repository's cell directory, the
/// build file rendered; files left from an earlier generation are removed.
fn write_cell(
    ws_root: &Path,
    source: &dyn Source,
    cell: &ToolchainsCell,
    buildfile: &str,
) -> Result<()> {
    let staging = ws_root.join(STATE_DIR);
    let dir = ws_root.join(CELL_DIR);
    real_dir(&dir)?;
    let mut written = BTreeSet::new();
    for entry in source.walk(&cell.dir)? {
        let rel = if cell.dir.is_root() {
            entry.path.clone()
        } else {
            match entry.path.as_str().strip_prefix(&format!("{}/", cell.dir)) {
                Some(rel) => RepoPath::new(rel)?,
                None => continue,
            }
        };
        let bytes = match entry.kind {
            EntryKind::File if entry.path == cell.buildfile => buildfile.as_bytes().to_vec(),
            EntryKind::File => source
                .read(&entry)
                .with_context(|| format!("cannot read {}", entry.path))?,
            EntryKind::Dir => {
                real_dir(&rel.to_fs_path(&dir))?;
                continue;
            }
            _ => {
                tracing::warn!(path = %entry.path, "not a file: left out of {CELL_DIR}");
                continue;
            }
        };
        let dest = rel.to_fs_path(&dir);
        if let Some(parent) = dest.parent() {
            real_dir(parent)?;
        }
        if std::fs::read(&dest).ok().as_deref() != Some(bytes.as_slice()) {
            write_atomic_in(&dest, &bytes, &staging)?;
        }
        written.insert(dest);
    }
    remove_stale(&dir, &written)
}

/// Makes `dir` a directory, refusing a symlink (a write must never go
/// through one) or a file in its place.
fn real_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "{}: not a directory (a symlink or a file); antares writes its toolchains cell there, remove it",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display())),
        Err(e) => Err(e).with_context(|| format!("cannot stat {}", dir.display())),
    }
}

fn remove_stale(dir: &Path, keep: &BTreeSet<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            remove_stale(&path, keep)?;
            let _ = std::fs::remove_dir(&path);
        } else if !keep.contains(&path) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

fn remove_cell(ws_root: &Path) -> Result<()> {
    let dir = ws_root.join(CELL_DIR);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_urls() {
        assert_eq!(
            host_port("https://github.com/a/b.tar.gz").as_deref(),
            Some("github.com:443")
        );
        assert_eq!(
            host_port("http://127.0.0.1:8080/x").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host_port("http://u@h.example/x").as_deref(),
            Some("h.example:80")
        );
        assert_eq!(host_port("ftp://h/x"), None);
        assert_eq!(host_port("https:///x"), None);
    }
}
