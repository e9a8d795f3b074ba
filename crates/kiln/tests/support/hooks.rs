//! Webhook deliveries to a real `kiln server` over HTTP, signed as the
//! forge would sign them, and the recorded GitHub bodies in
//! `shared/fixtures/webhooks/`.

#![allow(dead_code)]

use std::io::{Read, Write};

/// POST `body` to `path` on the server at `port`; (status, body).
pub fn post(port: u16, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A refused body may be answered before it is all read.
    let _ = s.write_all(body);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// A GitHub delivery of `event` to `/hooks/github?repo=app`, signed with
/// `secret`; (status, body).
pub fn github(port: u16, event: &str, delivery: &str, body: &[u8], secret: &str) -> (u16, String) {
    let (h, v) = kiln_forge::webhook::sign(kiln_forge::webhook::Forge::GitHub, body, secret);
    post(
        port,
        "/hooks/github?repo=app",
        &[
            ("X-GitHub-Event", event.to_owned()),
            ("X-GitHub-Delivery", delivery.to_owned()),
            (h, v),
        ],
        body,
    )
}

/// A recorded body, by its path under `shared/fixtures/webhooks/`.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/fixtures/webhooks/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
