//! The HTTP side of the Mono source: one reqwest client, timeouts, retries
//! with backoff, and a request counter.
//!
//! What is retried: connection errors, timeouts, bodies cut short, 5xx
//! answers and content that does not hash to the id it was asked for (all
//! of which a flaky proxy or a restarting server produce). What is not: 4xx
//! answers and bodies that arrive whole but cannot be understood — asking
//! again would get the same answer.

use crate::entry::ObjectId;
use crate::error::{Result, SourceError};
use crate::source::mono::wire;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tuning of the Mono client. [`MonoOptions::from_env`] reads overrides.
#[derive(Debug, Clone)]
pub struct MonoOptions {
    /// Limit for one whole request (connect, headers and body).
    pub timeout: Duration,
    /// How long connecting to the server may take.
    pub connect_timeout: Duration,
    /// Tries per request, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled for each next one (up to 5 s).
    pub backoff: Duration,
    /// Blob requests in flight at once in `read_many` and directory
    /// listings in flight in `walk`.
    pub concurrency: usize,
    /// Where verified raw trees are kept across runs (a directory shared by
    /// all workspaces, like the content store): a re-sync then asks the
    /// server only for directories whose tree id changed. `None`: memory only.
    pub tree_cache: Option<std::path::PathBuf>,
}

impl Default for MonoOptions {
    fn default() -> Self {
        MonoOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            attempts: 4,
            backoff: Duration::from_millis(100),
            concurrency: 32,
            tree_cache: None,
        }
    }
}

impl MonoOptions {
    /// Applies `ANTARES_MONO_TIMEOUT_MS`, `ANTARES_MONO_ATTEMPTS` and
    /// `ANTARES_MONO_CONCURRENCY` when set to a positive number.
    pub fn from_env(mut self) -> Self {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&n| n > 0)
        };
        if let Some(ms) = num("ANTARES_MONO_TIMEOUT_MS") {
            self.timeout = Duration::from_millis(ms);
        }
        if let Some(n) = num("ANTARES_MONO_ATTEMPTS") {
            self.attempts = n.min(100) as u32;
        }
        if let Some(n) = num("ANTARES_MONO_CONCURRENCY") {
            self.concurrency = n.min(1024) as usize;
        }
        self
    }
}

/// A retrying client for one Mono base URL.
pub struct Http {
    client: reqwest::Client,
    base: String,
    opts: MonoOptions,
    requests: AtomicU64,
}

/// Why one try failed, and whether another may help.
struct Failure {
    message: String,
    retry: bool,
}

impl Http {
    /// A client of the Mono server at `base`.
    pub fn new(base: &str, opts: MonoOptions) -> Result<Http> {
        // reqwest is built without a default crypto provider (ring is used
        // instead of aws-lc, which needs cmake); install it once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.connect_timeout)
            .pool_max_idle_per_host(opts.concurrency.max(1))
            .user_agent(concat!("antares/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Remote {
                url: base.to_string(),
                message: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Http {
            client,
            base: base.trim_end_matches('/').to_string(),
            opts,
            requests: AtomicU64::new(0),
        })
    }

    /// The options the client was made with.
    pub fn options(&self) -> &MonoOptions {
        &self.opts
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The full URL of `endpoint` with `query`, for requests and messages.
    pub fn url(&self, endpoint: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}{endpoint}", self.base);
        let mut sep = '?';
        for (k, v) in query {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
            sep = '&';
        }
        url
    }

    /// GETs `url`; when `expect` is given the body must be that git object
    /// (kind, id). Retries as the module doc says; the error names the URL.
    pub async fn get(&self, url: &str, expect: Option<(&str, &ObjectId)>) -> Result<Vec<u8>> {
        let mut delay = self.opts.backoff;
        let mut last = String::new();
        for attempt in 1..=self.opts.attempts.max(1) {
            match self.try_once(url, expect).await {
                Ok(body) => return Ok(body),
                Err(f) if !f.retry => {
                    return Err(SourceError::Remote {
                        url: url.to_string(),
                        message: f.message,
                    })
                }
                Err(f) => {
                    tracing::debug!(url, attempt, "mono request failed: {}", f.message);
                    last = f.message;
                }
            }
            if attempt < self.opts.attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        Err(SourceError::Remote {
            url: url.to_string(),
            message: format!("{last} (gave up after {} attempts)", self.opts.attempts),
        })
    }

    async fn try_once(
        &self,
        url: &str,
        expect: Option<(&str, &ObjectId)>,
    ) -> std::result::Result<Vec<u8>, Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let transient = |e: reqwest::Error| Failure {
            message: describe(&e),
            retry: true,
        };
        let resp = self.client.get(url).send().await.map_err(transient)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(transient)?;
        if !status.is_success() {
            return Err(Failure {
                message: format!("HTTP {status}{}", snippet(&body)),
                retry: status.is_server_error(),
            });
        }
        if let Some((kind, oid)) = expect {
            wire::verify(kind, &body, oid).map_err(|message| Failure {
                message,
                retry: true,
            })?;
        }
        Ok(body.to_vec())
    }
}

/// A reqwest error in words, with its cause chain (reqwest's own message
/// alone is often just "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the response body was cut short or unreadable"
    } else {
        "the connection failed"
    };
    let mut msg = format!("{what}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The start of an error body, for messages (servers explain there).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters and `/`
/// stay as they are, so paths remain readable in messages).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("/a b/c&d=é"), "/a%20b/c%26d%3D%C3%A9");
    }
}
