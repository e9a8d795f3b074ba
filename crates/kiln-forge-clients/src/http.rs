//! What every forge adapter shares: one HTTP client with timeouts, the
//! token header, the mapping of HTTP answers to [`ApiError`], JSON
//! decoding and `Link: rel="next"` pagination.
//!
//! The token is sent only to the configured API root: a pagination link
//! that points elsewhere is refused rather than followed.

use kiln_forge::api::{ApiError, ApiResult};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Longest wait for a TCP/TLS connection to the forge.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest any one request may take, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Pages followed at most by one listing (a runaway `Link` chain stops here).
pub const MAX_PAGES: usize = 20;
/// How much of an error body is kept in messages.
const BODY_EXCERPT: usize = 300;

/// The HTTP client every adapter uses: built once per process (building
/// one loads the TLS roots).
pub fn client() -> ApiResult<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ApiError::Invalid(format!("building the HTTP client: {e}")))
}

/// One forge API root with its credentials.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    /// API root without a trailing slash (`https://api.github.com`).
    base: String,
    headers: HeaderMap,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base)
            .field("headers", &"<redacted>")
            .finish()
    }
}

impl Http {
    /// `headers` are sent with every request (the token among them; marked
    /// sensitive so that no debug output shows it).
    pub fn new(
        client: reqwest::Client,
        base: &str,
        headers: &[(&'static str, String)],
    ) -> ApiResult<Http> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ApiError::Invalid(format!(
                "API URL `{base}` must start with https:// (or http://)"
            )));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                ApiError::Invalid(format!("header {name}: not a valid header value"))
            })?;
            v.set_sensitive(true);
            map.insert(HeaderName::from_static(name), v);
        }
        Ok(Http {
            client,
            base,
            headers: map,
        })
    }

    /// The API root (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/`, query allowed) under the root.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .headers(self.headers.clone())
    }

    /// Send and map the answer: 2xx is returned, anything else is an error.
    pub async fn send(&self, what: &str, req: RequestBuilder) -> ApiResult<Response> {
        let resp = req.send().await.map_err(|e| transport(what, &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let limited = rate_limited(status, resp.headers());
        let body = resp.text().await.unwrap_or_default();
        Err(classify(what, status, limited, &body))
    }

    /// Send and decode a JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, what: &str, req: RequestBuilder) -> ApiResult<T> {
        let resp = self.send(what, req).await?;
        decode(what, resp).await
    }

    /// GET `path` and every following page (`Link: <…>; rel="next"`), at
    /// most [`MAX_PAGES`], concatenated.
    pub async fn pages<T: DeserializeOwned>(&self, what: &str, path: &str) -> ApiResult<Vec<T>> {
        let mut out = Vec::new();
        let mut url = format!("{}{path}", self.base);
        for _ in 0..MAX_PAGES {
            let req = self.client.get(&url).headers(self.headers.clone());
            let resp = self.send(what, req).await?;
            let next = next_link(resp.headers());
            let page: Vec<T> = decode(what, resp).await?;
            out.extend(page);
            match next {
                None => return Ok(out),
                Some(n) if same_origin(&self.base, &n) => url = n,
                Some(n) => {
                    return Err(ApiError::Invalid(format!(
                        "{what}: next page `{n}` is outside {}",
                        self.base
                    )));
                }
            }
        }
        Ok(out)
    }
}

async fn decode<T: DeserializeOwned>(what: &str, resp: Response) -> ApiResult<T> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ApiError::Unavailable(format!("{what}: reading the answer: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Invalid(format!("{what}: {e}")))
}

fn transport(what: &str, e: &reqwest::Error) -> ApiError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display includes the URL, never headers.
    ApiError::Unavailable(format!("{what}: {kind}: {e}"))
}

/// GitHub answers 403 (or 429) with `x-ratelimit-remaining: 0` or a
/// `retry-after` when a rate limit is hit: that passes, a scope does not.
fn rate_limited(status: StatusCode, headers: &HeaderMap) -> bool {
    (status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS)
        && (headers.get("retry-after").is_some()
            || headers
                .get("x-ratelimit-remaining")
                .and_then(|v| v.to_str().ok())
                == Some("0"))
}

/// The one table from HTTP answers to [`ApiError`].
pub fn classify(what: &str, status: StatusCode, rate_limited: bool, body: &str) -> ApiError {
    let excerpt: String = body.chars().take(BODY_EXCERPT).collect();
    let msg = if excerpt.trim().is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        format!("{what}: HTTP {status}: {}", excerpt.trim())
    };
    match status.as_u16() {
        404 | 410 => ApiError::NotFound(msg),
        429 => ApiError::Unavailable(msg),
        401 | 403 if rate_limited => ApiError::Unavailable(msg),
        401 | 403 => ApiError::Unauthorized(msg),
        408 => ApiError::Unavailable(msg),
        500..=599 => ApiError::Unavailable(msg),
        _ => ApiError::Invalid(msg),
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// `url` is on the same scheme, host and port as `base`.
fn same_origin(base: &str, url: &str) -> bool {
    fn origin(u: &str) -> Option<&str> {
        let rest_at = u.find("://")? + 3;
        let end = u[rest_at..].find('/').map_or(u.len(), |i| rest_at + i);
        Some(&u[..end])
    }
    matches!((origin(base), origin(url)), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// Percent-encode one path segment (or a GitLab project path as one id):
/// everything but RFC 3986 unreserved characters.
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `owner/name` as path segments, each encoded (the `/` between kept).
pub fn repo_path(full_name: &str) -> String {
    full_name
        .split('/')
        .map(encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Commit statuses take one line of at most 140 characters on GitHub.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_errors() {
        let c = |s: u16, rl: bool| classify("x", StatusCode::from_u16(s).unwrap(), rl, "");
        assert!(matches!(c(404, false), ApiError::NotFound(_)));
        assert!(matches!(c(401, false), ApiError::Unauthorized(_)));
        assert!(matches!(c(403, false), ApiError::Unauthorized(_)));
        assert!(matches!(c(403, true), ApiError::Unavailable(_)));
        assert!(matches!(c(429, false), ApiError::Unavailable(_)));
        assert!(matches!(c(502, false), ApiError::Unavailable(_)));
        assert!(matches!(c(422, false), ApiError::Invalid(_)));
    }

    #[test]
    fn link_header_next() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/x?page=3>; rel=\"next\", <https://api.github.com/x?page=9>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?page=3")
        );
        h.insert(
            "link",
            HeaderValue::from_static("<https://a/x?page=1>; rel=\"prev\""),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn origins_and_encoding() {
        assert!(same_origin(
            "https://api.github.com",
            "https://api.github.com/repos?page=2"
        ));
        assert!(!same_origin(
            "https://api.github.com",
            "https://evil.example/x"
        ));
        assert!(!same_origin("http://127.0.0.1:1", "http://127.0.0.1:2/x"));
        assert_eq!(encode("group/sub proj"), "group%2Fsub%20proj");
        assert_eq!(repo_path("o w/n"), "o%20w/n");
        assert_eq!(one_line("a\nb", 140), "a");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
