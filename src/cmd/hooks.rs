//! `antares hooks install`: not written yet.

use crate::cli::{Global, HooksArgs};
use anyhow::{bail, Result};

pub fn run(_global: &Global, _args: &HooksArgs) -> Result<i32> {
    bail!("`antares hooks install` is not implemented yet")
}
