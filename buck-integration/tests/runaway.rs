//! Hostile `.bzl` files that try to take the machine: each is evaluated
//! through `compute` in a child process whose address space is limited
//! (`ulimit -v`), so a bound that does not hold shows as the child dying
//! (an allocation refused, a stack overflow) or a wrong message, never as
//! this machine swapping. Each must fail with an error naming the file
//! and line of the hostile statement.

use antares_buck::{compute, FileSet, GraphRequest, Warning};
use antares_overlay::{DirSource, RepoPath};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address space of the child: the test binary's own mappings plus the
/// 512 MiB Starlark heap limit, with room to spare, far below what any of
/// the hostile files asks for.
const CHILD_ADDRESS_SPACE_KB: u64 = 2 << 20;
/// A child still running after this long has escaped the tick bound.
const CHILD_DEADLINE: Duration = Duration::from_secs(300);
/// The environment variable naming the hostile file for the child (a
/// file: a hundred thousand brackets are too long for the environment).
const CASE_VAR: &str = "ANTARES_RUNAWAY_BZL";
/// How the child marks its answer on stdout.
const MARK: &str = "RUNAWAY-REASON: ";

/// Runs in the child only (`#[ignore]`d so a plain run skips it): evaluates
/// `p/BUCK`, which loads the hostile `p/defs.bzl`, and prints why the
/// `.bzl` failed.
#[test]
#[ignore = "the child process of the runaway tests, run by them"]
fn child() {
    let case = std::env::var(CASE_VAR).expect("run by the runaway tests");
    let bzl = std::fs::read_to_string(case).unwrap();
    let set = evaluate(&bzl);
    for w in &set.warnings {
        if let Warning::BzlFailed { reason, .. } = w {
            println!("{MARK}{reason}");
        }
    }
}

/// The file set of `//p:t` in a project whose `p/BUCK` loads `defs` as
/// `p/defs.bzl`.
fn evaluate(defs: &str) -> FileSet {
    let tmp = tempfile::tempdir().unwrap();
    for (path, text) in [
        (".buckconfig", "[cells]\nroot = .\n"),
        (
            "p/BUCK",
            "load(\":defs.bzl\", \"x\")\ngenrule(name = \"t\")\n",
        ),
        ("p/defs.bzl", defs),
    ] {
        let p = tmp.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let request = GraphRequest {
        patterns: vec!["//p:t".to_string()],
        current_dir: RepoPath::root(),
    };
    compute(&DirSource::open(tmp.path()).unwrap(), &request).unwrap()
}

/// Why `defs` failed, evaluated in a child with a bounded address space;
/// panics naming how the child ended when it printed no reason.
fn failure_of(defs: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let case = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(case.path(), defs).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {CHILD_ADDRESS_SPACE_KB} && exec \"$0\" \"$@\""
        ))
        .arg(exe)
        .args(["--exact", "child", "--ignored", "--nocapture", "--quiet"])
        .env(CASE_VAR, case.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CHILD_DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("still running after {CHILD_DEADLINE:?}:\n{defs}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(MARK))
        .map(str::to_string)
        .unwrap_or_else(|| {
            panic!(
                "no failure reported ({status}), for:\n{defs}\nstdout:\n{out}\nstderr:\n{}",
                err.chars().take(2000).collect::<String>()
            )
        })
}

/// Asserts `defs` fails at a place of `p/defs.bzl` with a message holding
/// each of `words`; the place begins with `line` (`"3:"`).
fn assert_stops(defs: &str, line: &str, words: &[&str]) {
    let why = failure_of(defs);
    let place = format!("p/defs.bzl:{line}");
    assert!(
        why.starts_with(&place),
        "expected {place}…, got: {why}\nfor:\n{defs}"
    );
    for w in words {
        assert!(why.contains(w), "expected {w:?} in: {why}\nfor:\n{defs}");
    }
}

/// A file that makes `s`, a string of 100 million bytes (within the
/// limit: one repetition), then runs `rest`.
fn with_big_string(rest: &str) -> String {
    format!("s = \"x\" * 100000000\n{rest}x = 1\n")
}

#[test]
fn augmented_repetition_is_refused_before_it_allocates() {
    assert_stops(
        "l = [1]\nl *= 2000000000\nx = l\n",
        "2:",
        &["list of 1 items 2000000000 times"],
    );
    assert_stops(
        "s = \"ab\"\ns *= 2000000000\nx = s\n",
        "2:",
        &["string of 2 items 2000000000 times"],
    );
}

#[test]
fn augmented_doubling_stops_at_the_heap_limit() {
    // `+=` runs natively; the statement after the one that passed the
    // limit (doubling 2^26 list cells, or a string of 2^29 bytes) is
    // refused: one doubling past the limit at most.
    for (start, doubling) in [("l = [1]", "l += l"), ("s = \"ab\"", "s += s")] {
        let why = failure_of(&format!(
            "{start}\n{}x = 1\n",
            format!("{doubling}\n").repeat(40)
        ));
        let line: usize = why
            .strip_prefix("p/defs.bzl:")
            .and_then(|rest| rest.split(':').next())
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("no line in: {why}"));
        assert!((20..=40).contains(&line), "{doubling}: {why}");
        assert!(why.contains("more than 512 MiB"), "{doubling}: {why}");
    }
}

#[test]
fn a_huge_join_is_refused() {
    assert_stops(
        &with_big_string("y = \"\".join([s] * 100)\n"),
        "2:",
        &["join"],
    );
    assert_stops(
        &with_big_string("y = (\"-\" * 10000000).join([\"a\"] * 1000)\n"),
        "2:",
        &["join"],
    );
}

#[test]
fn a_huge_replace_is_refused() {
    assert_stops(
        &with_big_string("y = s.replace(\"x\", \"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\")\n"),
        "2:",
        &["replace"],
    );
    assert_stops(
        &with_big_string("y = s.replace(\"\", \"yyyyyyyy\")\n"),
        "2:",
        &["replace"],
    );
}

#[test]
fn huge_formatting_is_refused() {
    assert_stops(
        &with_big_string("y = (\"{}\" * 100).format(*([s] * 100))\n"),
        "2:",
        &["format"],
    );
    assert_stops(
        &with_big_string("y = (\"{0}\" * 100).format(s)\n"),
        "2:",
        &["format"],
    );
    assert_stops(
        &with_big_string("y = (\"%s\" * 100) % tuple([s] * 100)\n"),
        "2:",
        &["%"],
    );
    let fstring = format!("y = f\"{}\"\n", "{s}".repeat(100));
    assert_stops(&with_big_string(&fstring), "2:", &["100 values as text"]);
    assert_stops(
        &with_big_string("y = str([s] * 100)\n"),
        "2:",
        &["1 values as text"],
    );
}

#[test]
fn repetition_in_a_comprehension_stops_at_the_heap_limit() {
    assert_stops(
        "x = [[0] * 1000000 for i in range(1000)]\n",
        "1:",
        &["512 MiB"],
    );
    assert_stops(
        "x = {i: \"x\" * 10000000 for i in range(1000)}\n",
        "1:",
        &["512 MiB"],
    );
}

#[test]
fn a_huge_range_is_not_materialised() {
    assert_stops("x = list(range(2000000000))\n", "1:", &["range"]);
    assert_stops("l = []\nl += range(2000000000)\nx = l\n", "2:", &["range"]);
    assert_stops("x = max(range(2000000000))\n", "1:", &["range"]);
}

#[test]
fn huge_integers_are_refused() {
    assert_stops(
        "n = 3\nfor i in range(64):\n    n = n * n\nx = n\n",
        "3:",
        &["integer"],
    );
    assert_stops("x = 1 << 100000000000\n", "1:", &["nteger"]);
}

#[test]
fn deep_nesting_is_refused() {
    let nested = "def f():\n    l = []\n    for i in range(1000000):\n        l = [l]\n    return l\nx = f()\n";
    let why = failure_of(nested);
    assert!(why.starts_with("p/defs.bzl: "), "{why}");
    assert!(why.contains("`x` nests"), "{why}");
    let literal = format!("x = {}{}\n", "[".repeat(100000), "]".repeat(100000));
    assert_stops(&literal, "1:", &["nest"]);
}

#[test]
fn recursion_and_recursive_values_stop() {
    assert_stops(
        "def f(n):\n    return f(n + 1)\nx = f(0)\n",
        "2:",
        &["call stack overflow"],
    );
    assert_stops(
        "l = [1]\nl.append(l)\ny = str(l) * 100000000\nx = l\n",
        "3:",
        &[],
    );
}

#[test]
fn checked_methods_passed_as_values_stay_checked() {
    for defs in [
        "f = (\"-\" * 10000000).join\ny = f([\"a\"] * 1000)\nx = 1\n",
        "f = getattr(\"-\" * 10000000, \"join\")\ny = f([\"a\"] * 1000)\nx = 1\n",
    ] {
        assert_stops(defs, "2:", &["`.join()` on a string of 10000000 bytes"]);
    }
}

#[test]
fn making_huge_lists_of_items_is_refused() {
    assert_stops(
        "s = \"x \" * 50000000\ny = s.split(\" \")\nx = 1\n",
        "2:",
        &["`.split()`"],
    );
    assert_stops(
        &with_big_string("y = list(s.elems())\n"),
        "2:",
        &["`.elems()`"],
    );
    assert_stops(
        "l = [1] * 30000000\ny = list(zip(l, l, l, l))\nx = 1\n",
        "2:",
        &["making a list of 30000000 items"],
    );
}

/// The rewritten operations give what starlark gives, in every form the
/// rewrite handles (parenthesised receivers, method values, `getattr`,
/// f-string expressions with parentheses and conversions, `*=` on an
/// index, `%=`, star arguments).
#[test]
fn checked_operations_keep_their_results() {
    let defs = r#"
def check(got, want):
    if got != want:
        fail("got %r, want %r" % (got, want))

check(("a" + "b").join(["1", "2"]), "1ab2")
check(( "-" ).join(["a", "b"]), "a-b")
j = ",".join
check(list(map(j, [["a", "b"], ["c"]])), ["a,b", "c"])
check(getattr("x", "join")(["1", "2"]), "1x2")
check(getattr("x", "nope", 5), 5)
check("{}-{}".format(str(1), repr("q")), "1-\"q\"")
check("a.b.c".replace(".", "/", 1), "a/b.c")
check("a b".split(" "), ["a", "b"])
check(f"{(1)}{2 if True else 3}{'x'!r}", "12\"x\"")
check("%s=%d" % ("k", 3), "k=3")
l = [2, 3]
l[0] *= 4
check(l, [8, 3])
s = "%s!"
s %= "hi"
check(s, "hi!")
n = 7
n *= 6
check(n, 42)
check(list(zip(*[[1, 2], [3, 4]])), [(1, 3), (2, 4)])
check(sorted({"b": 1, "a": 2}), ["a", "b"])
check(list(range(10, 0, -3)), [10, 7, 4, 1])
check(len(range(0, 10, 3)), 4)
check(1 + 2 + 3, 6)
check([1] + [2], [1, 2])
check(2 * 3 * 7, 42)
x = 1
"#;
    let set = evaluate(defs);
    assert!(set.warnings.is_empty(), "{:#?}", set.warnings);
}
