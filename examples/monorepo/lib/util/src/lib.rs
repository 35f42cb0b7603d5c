//! Small helpers shared by the server and the CLI.

pub fn greeting(name: &str) -> String {
    format!("hello, {name}")
}
