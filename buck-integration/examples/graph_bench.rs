//! Graph benchmark: a synthetic repo of 2,000 packages with macros, globs
//! and selects; times the closure of one leaf target and of `//...`.
//! Targets (`docs/architecture.md#performance-targets`): leaf < 1 s, `//...` < 5 s on a 2-core machine.
//!
//!     cargo run --release -p antares-buck --example graph_bench [PACKAGES] [RUNS]

use antares_buck::{compute, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn write(root: &Path, path: &str, text: &str) -> std::io::Result<()> {
    let p = root.join(path);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(p, text)
}

/// Package `i` lives at `g{i/100}/p{i}` and depends on `i/2` and `i/3`, so
/// `p0` is a leaf and the last package reaches a large part of the repo.
fn package_dir(i: usize) -> String {
    format!("g{}/p{i}", i / 100)
}

fn generate(root: &Path, packages: usize) -> std::io::Result<()> {
    write(
        root,
        ".buckconfig",
        "[cells]\n  root = .\n  prelude = prelude\n  toolchains = toolchains\n\
         [external_cells]\n  prelude = bundled\n[project]\n  ignore = .git\n",
    )?;
    write(root, ".buckroot", "")?;
    write(
        root,
        "toolchains/BUCK",
        "load(\"@prelude//toolchains:cxx.bzl\", \"system_cxx_toolchain\")\n\
         system_cxx_toolchain(name = \"cxx\", visibility = [\"PUBLIC\"])\n",
    )?;
    write(
        root,
        "build/macros.bzl",
        "load(\"//build:flags.bzl\", \"flags\")\n\
         def lib(name, deps = []):\n\
         \x20   native.cxx_library(\n\
         \x20       name = name,\n\
         \x20       srcs = glob([\"src/**/*.c\"], exclude = [\"src/skip/**\"]),\n\
         \x20       headers = glob([\"*.h\"]),\n\
         \x20       compiler_flags = flags(),\n\
         \x20       deps = deps + select({\"config//os:linux\": [], \"DEFAULT\": []}),\n\
         \x20       visibility = [\"PUBLIC\"],\n\
         \x20   )\n",
    )?;
    write(
        root,
        "build/flags.bzl",
        "def flags():\n    return [\"-O\" + read_config(\"opt\", \"level\", \"2\")]\n",
    )?;
    for i in 0..packages {
        let dir = package_dir(i);
        let deps: Vec<String> = if i == 0 {
            Vec::new()
        } else {
            let mut d = vec![format!("\"//{}:p{}\"", package_dir(i / 2), i / 2)];
            if i / 3 != i / 2 {
                d.push(format!("\"//{}:p{}\"", package_dir(i / 3), i / 3));
            }
            d
        };
        write(
            root,
            &format!("{dir}/BUCK"),
            &format!(
                "load(\"//build:macros.bzl\", \"lib\")\n\nlib(name = \"p{i}\", deps = [{}])\n",
                deps.join(", ")
            ),
        )?;
        write(root, &format!("{dir}/src/a.c"), "int a;\n")?;
        write(root, &format!("{dir}/src/deep/b.c"), "int b;\n")?;
        write(root, &format!("{dir}/src/skip/c.c"), "int c;\n")?;
        write(root, &format!("{dir}/p.h"), "int p;\n")?;
        write(root, &format!("{dir}/README"), "readme\n")?;
    }
    Ok(())
}

/// Peak resident memory of this process so far, from /proc.
fn peak_rss_mb() -> String {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn measure(source: &DirSource, pattern: &str, runs: usize) -> (Duration, usize, usize) {
    let request = GraphRequest {
        patterns: vec![pattern.to_string()],
        current_dir: RepoPath::root(),
    };
    let mut times = Vec::new();
    let mut sizes = (0, 0);
    for _ in 0..runs {
        let start = Instant::now();
        match compute(source, &request) {
            Ok(set) => sizes = (set.packages.len(), set.files.len()),
            Err(e) => {
                eprintln!("{pattern}: {e}");
                std::process::exit(1);
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], sizes.0, sizes.1)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let packages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let tmp = std::env::temp_dir().join(format!("antares-graph-bench-{}", std::process::id()));
    let start = Instant::now();
    generate(&tmp, packages)?;
    println!(
        "generated {packages} packages in {:.2?} at {}",
        start.elapsed(),
        tmp.display()
    );
    let source = DirSource::open(&tmp).map_err(std::io::Error::other)?;
    let last = packages.saturating_sub(1);
    for (what, pattern, target) in [
        ("leaf target", format!("//{}:p0", package_dir(0)), Some(1.0)),
        (
            "top target",
            format!("//{}:p{last}", package_dir(last)),
            None,
        ),
        ("//...", "//...".to_string(), Some(5.0)),
    ] {
        let (median, pkgs, files) = measure(&source, &pattern, runs);
        let verdict = match target {
            Some(limit) if median.as_secs_f64() < limit => format!("(target < {limit} s: ok)"),
            Some(limit) => format!("(target < {limit} s: MISSED)"),
            None => String::new(),
        };
        println!(
            "{what:12} {pattern:24} median of {runs}: {median:>10.2?}  {pkgs:5} packages {files:6} files  peak RSS {} {verdict}",
            peak_rss_mb()
        );
    }
    fs::remove_dir_all(&tmp)
}
