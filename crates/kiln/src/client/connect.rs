//! Which server the client commands talk to, and with which token.
//!
//! Each of the two is taken from the first place that has it:
//!
//! - server: `--server`, then `KILN_SERVER`, then the file `kiln up` writes;
//! - token: `--token`, then `--token-file`, then `KILN_TOKEN`, then the token
//!   file named by the file `kiln up` writes.
//!
//! The file `kiln up` writes is `<data dir>/client.json`
//! (`{"server": "http://127.0.0.1:PORT", "token_file": "/path/admin.token"}`),
//! where the data dir is `$KILN_DATA` or the platform's data directory plus
//! `kiln`. Its token is used only for its own server: a `--server` pointing
//! elsewhere never receives the local admin token.
//!
//! Resolution is pure apart from reading those two files: the environment
//! comes in as a lookup function, so tests need not touch the process's.

use crate::client::args::ConnectArgs;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The file `kiln up` writes for the client, next to its data.
pub const CLIENT_FILE: &str = "client.json";

/// What `kiln up` writes to `<data dir>/client.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFile {
    pub server: String,
    /// Absolute, or relative to the directory holding `client.json`.
    pub token_file: PathBuf,
}

/// Where a setting came from, for error messages that say what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    /// `--token-file FILE`.
    TokenFile(PathBuf),
    /// The file `kiln up` wrote (and, for a token, the file it names).
    Up(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "{flag}"),
            Source::Env(var) => write!(f, "${var}"),
            Source::TokenFile(path) => write!(f, "--token-file {}", path.display()),
            Source::Up(path) => write!(f, "{} (written by `kiln up`)", path.display()),
        }
    }
}

/// A server and a token to use with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub server: String,
    pub token: String,
    pub server_from: Source,
    pub token_from: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no server: start one with `kiln up`, or pass --server/KILN_SERVER (found no {})",
        .client_file.display()
    )]
    NoServer { client_file: PathBuf },
    #[error(
        "no server: start one with `kiln up`, or pass --server/KILN_SERVER \
         (no data directory: set KILN_DATA or HOME)"
    )]
    NoDataDir,
    #[error(
        "cannot read {}: {message}; start the server again with `kiln up`, or pass --server/KILN_SERVER",
        .path.display()
    )]
    BadClientFile { path: PathBuf, message: String },
    #[error("no token for {server}: pass --token-file FILE, KILN_TOKEN or --token{hint}")]
    NoToken { server: String, hint: String },
    #[error("cannot read the token file {} ({from}): {message}", .path.display())]
    TokenFile {
        path: PathBuf,
        from: Source,
        message: String,
    },
    #[error("the token from {0} is empty")]
    EmptyToken(Source),
    #[error("bad server URL `{url}` (from {from}): expected http://HOST:PORT or https://HOST")]
    BadServer { url: String, from: Source },
}

impl ConnectError {
    /// Bad input the user typed (as opposed to a missing server or token).
    pub fn is_usage(&self) -> bool {
        match self {
            ConnectError::BadServer { .. } | ConnectError::EmptyToken(_) => true,
            ConnectError::NoServer { .. }
            | ConnectError::NoDataDir
            | ConnectError::BadClientFile { .. }
            | ConnectError::NoToken { .. }
            | ConnectError::TokenFile { .. } => false,
        }
    }
}

/// kiln's data directory, where `kiln up` puts its files: `$KILN_DATA`, or
/// the platform's data directory plus `kiln` (`~/.local/share/kiln` on
/// Linux), or `.kiln-data` when the platform has none (no HOME).
pub fn data_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match env("KILN_DATA").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => dirs::data_dir()
            .map(|d| d.join("kiln"))
            .unwrap_or_else(|| PathBuf::from(".kiln-data")),
    }
}

/// Resolve from the real environment.
pub fn resolve_from_env(args: &ConnectArgs) -> Result<Endpoint, ConnectError> {
    let env = |k: &str| std::env::var(k).ok();
    let dir = data_dir(&env);
    resolve(args, &env, Some(&dir))
}

/// Resolve the endpoint; `data_dir` is where `client.json` may be.
pub fn resolve(
    args: &ConnectArgs,
    env: &dyn Fn(&str) -> Option<String>,
    data_dir: Option<&Path>,
) -> Result<Endpoint, ConnectError> {
    let client_path = data_dir.map(|d| d.join(CLIENT_FILE));
    // Read lazily: only when a flag or variable does not settle it.
    let read_up = || -> Result<Option<ClientFile>, ConnectError> {
        match &client_path {
            Some(p) => read_client_file(p),
            None => Ok(None),
        }
    };

    let given_server = match (&args.server, env("KILN_SERVER").filter(|v| !v.is_empty())) {
        (Some(s), _) => Some((s.clone(), Source::Flag("--server"))),
        (None, Some(s)) => Some((s, Source::Env("KILN_SERVER"))),
        (None, None) => None,
    };
    let mut up: Option<Option<ClientFile>> = None;
    let (server, server_from) = match given_server {
        Some(found) => found,
        None => {
            let file = read_up()?;
            let Some(path) = client_path.clone() else {
                return Err(ConnectError::NoDataDir);
            };
            match &file {
                Some(f) => {
                    let found = (f.server.clone(), Source::Up(path));
                    up = Some(file);
                    found
                }
                None => return Err(ConnectError::NoServer { client_file: path }),
            }
        }
    };
    let server = check_server(&server, &server_from)?;

    let (token, token_from) = if let Some(t) = &args.token {
        (t.clone(), Source::Flag("--token"))
    } else if let Some(path) = &args.token_file {
        let from = Source::TokenFile(path.clone());
        (read_token(path, &from)?, from)
    } else if let Some(t) = env("KILN_TOKEN").filter(|v| !v.is_empty()) {
        (t, Source::Env("KILN_TOKEN"))
    } else {
        let file = match up {
            Some(file) => file,
            None => read_up()?,
        };
        let Some(file) = file else {
            return Err(ConnectError::NoToken {
                server,
                hint: String::new(),
            });
        };
        let up_server = file.server.trim_end_matches('/');
        if up_server != server {
            return Err(ConnectError::NoToken {
                server,
                hint: format!(" (the token `kiln up` wrote is for {up_server})"),
            });
        }
        let base = client_path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        let path = base.join(&file.token_file);
        let from = Source::Up(path.clone());
        (read_token(&path, &from)?, from)
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(ConnectError::EmptyToken(token_from));
    }
    Ok(Endpoint {
        server,
        token,
        server_from,
        token_from,
    })
}

fn check_server(url: &str, from: &Source) -> Result<String, ConnectError> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.to_owned()),
        Some(_) | None => Err(ConnectError::BadServer {
            url: url.to_owned(),
            from: from.clone(),
        }),
    }
}

fn read_client_file(path: &Path) -> Result<Option<ClientFile>, ConnectError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConnectError::BadClientFile {
                path: path.to_owned(),
                message: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ConnectError::BadClientFile {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

fn read_token(path: &Path, from: &Source) -> Result<String, ConnectError> {
    std::fs::read_to_string(path).map_err(|e| ConnectError::TokenFile {
        path: path.to_owned(),
        from: from.clone(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fixture {
        dir: tempfile::TempDir,
        env: HashMap<&'static str, String>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().expect("tempdir"),
                env: HashMap::new(),
            }
        }
        /// What `kiln up` leaves behind: client.json and a token file.
        fn up(&self, server: &str, token: &str) {
            std::fs::write(self.dir.path().join("admin.token"), format!("{token}\n"))
                .expect("write token");
            let file = ClientFile {
                server: server.into(),
                token_file: "admin.token".into(),
            };
            std::fs::write(
                self.dir.path().join(CLIENT_FILE),
                serde_json::to_string(&file).expect("json"),
            )
            .expect("write client.json");
        }
        fn resolve(&self, args: &ConnectArgs) -> Result<Endpoint, ConnectError> {
            let env = |k: &str| self.env.get(k).cloned();
            resolve(args, &env, Some(self.dir.path()))
        }
    }

    fn flags(server: Option<&str>, token: Option<&str>) -> ConnectArgs {
        ConnectArgs {
            server: server.map(str::to_owned),
            token: token.map(str::to_owned),
            token_file: None,
        }
    }

    #[test]
    fn client_json_alone_is_enough() {
        let fx = Fixture::new();
        fx.up("http://127.0.0.1:7777/", "up-token");
        let ep = fx.resolve(&flags(None, None)).expect("resolves");
        assert_eq!(ep.server, "http://127.0.0.1:7777");
        assert_eq!(ep.token, "up-token");
        assert_eq!(ep.server_from, Source::Up(fx.dir.path().join(CLIENT_FILE)));
        assert_eq!(ep.token_from, Source::Up(fx.dir.path().join("admin.token")));
    }

    #[test]
    fn env_beats_client_json_and_flags_beat_env() {
        let mut fx = Fixture::new();
        fx.up("http://127.0.0.1:7777", "up-token");
        fx.env.insert("KILN_SERVER", "http://env:1".into());
        fx.env.insert("KILN_TOKEN", "env-token".into());
        let ep = fx.resolve(&flags(None, None)).expect("env");
        assert_eq!(
            (ep.server.as_str(), ep.token.as_str()),
            ("http://env:1", "env-token")
        );
        assert_eq!(ep.server_from, Source::Env("KILN_SERVER"));

        let ep = fx
            .resolve(&flags(Some("https://flag.example"), Some("flag-token")))
            .expect("flags");
        assert_eq!(
            (ep.server.as_str(), ep.token.as_str()),
            ("https://flag.example", "flag-token")
        );
        assert_eq!(ep.token_from, Source::Flag("--token"));
    }

    #[test]
    fn token_file_flag_beats_env_token() {
        let mut fx = Fixture::new();
        fx.env.insert("KILN_SERVER", "http://env:1".into());
        fx.env.insert("KILN_TOKEN", "env-token".into());
        let path = fx.dir.path().join("mine.token");
        std::fs::write(&path, "  file-token \n").expect("write");
        let mut args = flags(None, None);
        args.token_file = Some(path.clone());
        let ep = fx.resolve(&args).expect("resolves");
        assert_eq!(ep.token, "file-token");
        assert_eq!(ep.token_from, Source::TokenFile(path));
    }

    #[test]
    fn server_from_env_with_token_from_client_json_of_the_same_server() {
        let mut fx = Fixture::new();
        fx.up("http://127.0.0.1:7777", "up-token");
        fx.env
            .insert("KILN_SERVER", "http://127.0.0.1:7777/".into());
        let ep = fx.resolve(&flags(None, None)).expect("resolves");
        assert_eq!(ep.token, "up-token");
    }

    #[test]
    fn the_local_admin_token_never_goes_to_another_server() {
        let fx = Fixture::new();
        fx.up("http://127.0.0.1:7777", "up-token");
        let err = fx
            .resolve(&flags(Some("https://ci.example.com"), None))
            .expect_err("no token for another server");
        let msg = err.to_string();
        assert!(msg.contains("no token for https://ci.example.com"), "{msg}");
        assert!(msg.contains("is for http://127.0.0.1:7777"), "{msg}");
    }

    #[test]
    fn nothing_anywhere_says_how_to_fix_it() {
        let fx = Fixture::new();
        let err = fx.resolve(&flags(None, None)).expect_err("no server");
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "no server: start one with `kiln up`, or pass --server/KILN_SERVER (found no "
            ),
            "{msg}"
        );
        assert!(msg.contains("client.json"), "{msg}");
        assert!(!err.is_usage());

        let env = |_: &str| None;
        let err = resolve(&flags(None, None), &env, None).expect_err("no data dir");
        assert!(err.to_string().contains("start one with `kiln up`"));
    }

    #[test]
    fn server_without_any_token() {
        let fx = Fixture::new();
        let err = fx
            .resolve(&flags(Some("http://h:1"), None))
            .expect_err("no token");
        assert_eq!(
            err.to_string(),
            "no token for http://h:1: pass --token-file FILE, KILN_TOKEN or --token"
        );
    }

    #[test]
    fn broken_files_are_named() {
        let fx = Fixture::new();
        std::fs::write(fx.dir.path().join(CLIENT_FILE), "{not json").expect("write");
        let msg = fx.resolve(&flags(None, None)).expect_err("bad").to_string();
        assert!(msg.starts_with("cannot read "), "{msg}");
        assert!(msg.contains("kiln up"), "{msg}");

        let fx = Fixture::new();
        fx.up("http://127.0.0.1:7777", "t");
        std::fs::remove_file(fx.dir.path().join("admin.token")).expect("rm");
        let msg = fx.resolve(&flags(None, None)).expect_err("bad").to_string();
        assert!(msg.contains("cannot read the token file"), "{msg}");
        assert!(msg.contains("admin.token"), "{msg}");
    }

    #[test]
    fn bad_urls_and_empty_tokens_are_usage_errors() {
        let fx = Fixture::new();
        let err = fx
            .resolve(&flags(Some("localhost:8080"), Some("t")))
            .expect_err("bad url");
        assert!(err.is_usage());
        assert!(err.to_string().contains("expected http://HOST:PORT"));
        let err = fx
            .resolve(&flags(Some("http://h"), Some("  ")))
            .expect_err("empty");
        assert!(err.is_usage());
        assert_eq!(err.to_string(), "the token from --token is empty");
    }

    #[test]
    fn kiln_data_picks_the_directory() {
        let env = |k: &str| (k == "KILN_DATA").then(|| "/srv/kiln".to_owned());
        assert_eq!(data_dir(&env), PathBuf::from("/srv/kiln"));
    }
}
