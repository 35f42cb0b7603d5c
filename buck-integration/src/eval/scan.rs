//! The fallback for files that fail to parse or evaluate: their string
//! literals, found by a small tokenizer that knows comments and Python
//! quoting. Every label among them counts as a dependency, every `.bzl`
//! among them as a load, so the file set stays a superset.

/// The contents of every string literal in `text` (escapes kept verbatim;
/// labels never contain them).
pub(crate) fn string_literals(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                let triple = bytes.len() >= i + 3 && bytes[i + 1] == q && bytes[i + 2] == q;
                let (open, close_len) = if triple { (i + 3, 3) } else { (i + 1, 1) };
                let mut j = open;
                let mut end = None;
                while j < bytes.len() {
                    if bytes[j] == b'\\' {
                        j += 2;
                        continue;
                    }
                    if !triple && bytes[j] == b'\n' {
                        break;
                    }
                    if bytes[j] == q
                        && (!triple
                            || (j + 2 < bytes.len() && bytes[j + 1] == q && bytes[j + 2] == q))
                    {
                        end = Some(j);
                        break;
                    }
                    j += 1;
                }
                match end {
                    Some(e) => {
                        out.push(text.get(open..e).unwrap_or_default().to_string());
                        i = e + close_len;
                    }
                    None => i = j.min(bytes.len()),
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_literals_outside_comments() {
        let text = "load(\"//a:b.bzl\", 'x')\n# \"not\"\nf(\"\"\"multi\nline\"\"\", 'it\\'s') + 'unterminated\n'ok'";
        assert_eq!(
            string_literals(text),
            vec!["//a:b.bzl", "x", "multi\nline", "it\\'s", "ok"]
        );
    }
}
