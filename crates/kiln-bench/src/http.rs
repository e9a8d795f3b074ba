//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, enough to
//! talk to `kiln server` on loopback with a bearer token.
//!
//! Why not a library: the benchmarks time single requests, so the client
//! must add nothing that a timing could include (no connection pool, no
//! runtime, no redirects), and the workspace has no blocking client. One
//! connection per request (`Connection: close`), `TCP_NODELAY`, the body
//! read by `Content-Length` (or chunked), so a call returns as soon as the
//! last byte of the answer has arrived.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The API of one server, as one bearer token.
#[derive(Clone, Debug)]
pub struct Api {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub token: String,
}

/// Status and body of an answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Api {
    pub fn new(addr: String, token: String) -> Api {
        Api { addr, token }
    }

    /// Sends one request and reads the whole answer.
    pub fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
        let mut stream = TcpStream::connect(&self.addr)
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let body = body.unwrap_or(b"");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Accept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            self.token,
            body.len()
        )
        .into_bytes();
        if !body.is_empty() {
            req.extend_from_slice(b"Content-Type: application/json\r\n");
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        stream.write_all(&req)?;
        read_response(&mut stream).with_context(|| format!("{method} {path}"))
    }

    /// A JSON request whose answer must be 2xx; the answer parsed as `T`
    /// (a 204 parses as JSON `null`).
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let bytes = body.map(serde_json::to_vec).transpose()?;
        let r = self.send(method, path, bytes.as_deref())?;
        if !(200..300).contains(&r.status) {
            bail!(
                "{method} {path}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body).trim()
            );
        }
        let text: &[u8] = if r.body.is_empty() { b"null" } else { &r.body };
        serde_json::from_slice(text).with_context(|| format!("{method} {path}: parsing the answer"))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call("GET", path, None::<&()>)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.call("POST", path, Some(body))
    }
}

fn read_response(stream: &mut TcpStream) -> Result<Response> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the connection closed before the headers ended");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("a malformed status line")?;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            length = v.parse::<usize>().ok();
        } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let mut body = buf.split_off(head_end + 4);
    match (length, chunked) {
        (Some(len), false) => {
            while body.len() < len {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    bail!(
                        "the connection closed {} bytes into a {len}-byte body",
                        body.len()
                    );
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        (_, true) => {
            stream.read_to_end(&mut body)?;
            body = dechunk(&body)?;
        }
        (None, false) => {
            stream.read_to_end(&mut body)?;
        }
    }
    Ok(Response { status, body })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a complete chunked body.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(raw, b"\r\n").context("a chunk size line without an end")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("chunk size `{size_text}`"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            bail!("a chunk longer than the body");
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while find(&got, b"\r\n\r\n").is_none() {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            // Keep the connection open: a Content-Length body must not
            // need the close.
            std::thread::sleep(Duration::from_millis(300));
        });
        addr
    }

    #[test]
    fn reads_a_content_length_body_without_waiting_for_the_close() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
        let api = Api::new(addr, "t".into());
        let started = std::time::Instant::now();
        let v: serde_json::Value = api.get("/x").unwrap();
        assert_eq!(v["a"], 1);
        assert!(started.elapsed() < Duration::from_millis(250));
    }

    #[test]
    fn decodes_chunked_bodies_and_reports_errors() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        let addr = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
        let err = Api::new(addr, "t".into())
            .get::<serde_json::Value>("/x")
            .unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    }
}
