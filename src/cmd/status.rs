//! `antares status [--json]`

use crate::cli::{Global, StatusArgs};
use crate::quote::quoted;
use crate::workspace::Workspace;
use anyhow::Result;

pub fn run(global: &Global, args: &StatusArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let mut st = antares_materializer::status::status(&ws.layout)?;
    // antares' own: the composed .buckconfig.local and the toolchains cell.
    st.added.retain(|p| {
        p != crate::buckconfig_local::NAME
            && !p.starts_with(&format!("{}/", crate::toolchains::CELL_DIR))
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        for c in &st.conflicts {
            println!(
                "C {}  (source {}; its version is in .antares/conflicts/)",
                quoted(&c.path),
                c.theirs
            );
        }
        for p in &st.modified {
            println!("M {}", quoted(p));
        }
        for p in &st.added {
            println!("A {}", quoted(p));
        }
        for p in &st.deleted {
            println!("D {}", quoted(p));
        }
        if st.is_clean() {
            eprintln!("clean: the workspace matches the last sync");
        }
    }
    Ok(if st.conflicts.is_empty() {
        super::OK
    } else {
        super::CONFLICTS
    })
}
