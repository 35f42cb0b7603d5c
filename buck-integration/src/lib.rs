//! antares-buck: what a Buck2 build needs, computed without running buck2.
mod cells;
mod config;
mod error;
mod eval;
mod glob;
mod label;
mod pattern;
mod tree;
pub use error::BuckError;
