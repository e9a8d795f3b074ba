//! Server configuration in two stages: [`RawConfig`] is what the TOML file
//! and the environment say (serde, no I/O), [`Config`] is validated and
//! defaulted. Defaults live in one embedded file, `defaults.toml`, which
//! documents every key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULTS: &str = include_str!("defaults.toml");

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub workflows_dir: Option<String>,
    pub public_url: Option<String>,
    pub secret_key_file: Option<String>,
    #[serde(default)]
    pub queue: RawQueue,
    #[serde(default)]
    pub triggers: RawTriggers,
    #[serde(default)]
    pub labels: RawLabels,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLabels {
    pub aliases: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTriggers {
    pub time_zone: Option<String>,
    pub hook_body_limit_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub lease_seconds: Option<f64>,
    pub heartbeat_seconds: Option<f64>,
    pub max_attempts: Option<u32>,
    pub max_claim_wait_seconds: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub workflows_dir: String,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub max_attempts: u32,
    pub max_claim_wait: Duration,
    /// The time zone schedules are read in.
    pub time_zone: jiff::tz::TimeZone,
    /// Webhook bodies larger than this get 413.
    pub hook_body_limit: usize,
    /// The URL people reach the server at (no trailing slash): links in
    /// commit statuses and pull request comments start with it.
    pub public_url: String,
    /// The file holding the key that seals secrets at rest (forge tokens).
    pub secret_key_file: PathBuf,
    /// `runs-on` label → the agent labels that serve it.
    pub label_aliases: Vec<(String, Vec<String>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl RawConfig {
    pub fn parse(file: &str, text: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: e.to_string(),
        })
    }

    /// `other`'s keys win over `self`'s.
    pub fn merge(self, other: RawConfig) -> RawConfig {
        RawConfig {
            listen: other.listen.or(self.listen),
            data_dir: other.data_dir.or(self.data_dir),
            workflows_dir: other.workflows_dir.or(self.workflows_dir),
            public_url: other.public_url.or(self.public_url),
            secret_key_file: other.secret_key_file.or(self.secret_key_file),
            queue: RawQueue {
                lease_seconds: other.queue.lease_seconds.or(self.queue.lease_seconds),
                heartbeat_seconds: other
                    .queue
                    .heartbeat_seconds
                    .or(self.queue.heartbeat_seconds),
                max_attempts: other.queue.max_attempts.or(self.queue.max_attempts),
                max_claim_wait_seconds: other
                    .queue
                    .max_claim_wait_seconds
                    .or(self.queue.max_claim_wait_seconds),
            },
            triggers: RawTriggers {
                time_zone: other.triggers.time_zone.or(self.triggers.time_zone),
                hook_body_limit_bytes: other
                    .triggers
                    .hook_body_limit_bytes
                    .or(self.triggers.hook_body_limit_bytes),
            },
            labels: RawLabels {
                aliases: other.labels.aliases.or(self.labels.aliases),
            },
        }
    }

    /// Keys from `KILN_*` variables (as read by the caller).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<RawConfig, ConfigError> {
        let num = |key: &str| -> Result<Option<f64>, ConfigError> {
            get(key)
                .map(|v| {
                    v.trim().parse::<f64>().map_err(|_| ConfigError::Invalid {
                        key: key.into(),
                        message: format!("`{v}` is not a number"),
                    })
                })
                .transpose()
        };
        Ok(RawConfig {
            listen: get("KILN_LISTEN"),
            data_dir: get("KILN_DATA"),
            workflows_dir: get("KILN_WORKFLOWS_DIR"),
            public_url: get("KILN_PUBLIC_URL"),
            secret_key_file: get("KILN_SECRET_KEY_FILE"),
            queue: RawQueue {
                lease_seconds: num("KILN_LEASE_SECONDS")?,
                heartbeat_seconds: num("KILN_HEARTBEAT_SECONDS")?,
                max_attempts: num("KILN_MAX_ATTEMPTS")?.map(|n| n as u32),
                max_claim_wait_seconds: num("KILN_MAX_CLAIM_WAIT_SECONDS")?,
            },
            triggers: RawTriggers {
                time_zone: get("KILN_TIME_ZONE"),
                hook_body_limit_bytes: num("KILN_HOOK_BODY_LIMIT_BYTES")?.map(|n| n as u64),
            },
            labels: RawLabels::default(),
        })
    }

    /// Validate and fill in defaults; `platform_data` is used when
    /// `data_dir` is empty.
    pub fn resolve(self, platform_data: PathBuf) -> Result<Config, ConfigError> {
        let defaults = RawConfig::parse("defaults.toml", DEFAULTS)?;
        let raw = defaults.merge(self);
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        let listen_s = raw.listen.unwrap_or_default();
        let listen = listen_s.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_s}` is not an address such as 127.0.0.1:7171"),
            )
        })?;
        let data_dir = match raw.data_dir.as_deref() {
            None | Some("") => platform_data,
            Some(d) => PathBuf::from(d),
        };
        let secs = |key: &str, v: Option<f64>| -> Result<Duration, ConfigError> {
            let v = v.unwrap_or(0.0);
            if v > 0.0 && v.is_finite() {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(invalid(
                    key,
                    format!("must be a positive number of seconds, got {v}"),
                ))
            }
        };
        let lease = secs("queue.lease_seconds", raw.queue.lease_seconds)?;
        let heartbeat = secs("queue.heartbeat_seconds", raw.queue.heartbeat_seconds)?;
        if heartbeat >= lease {
            return Err(invalid(
                "queue.heartbeat_seconds",
                format!(
                    "must be shorter than queue.lease_seconds ({}s)",
                    lease.as_secs_f64()
                ),
            ));
        }
        let public_url = match raw.public_url.as_deref().map(str::trim) {
            None | Some("") => format!("http://{listen}"),
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_owned()
            }
            Some(u) => {
                return Err(invalid(
                    "public_url",
                    format!("`{u}` is not an http:// or https:// URL"),
                ));
            }
        };
        let secret_key_file = match raw.secret_key_file.as_deref() {
            None | Some("") => data_dir.join("secret.key"),
            Some(p) => PathBuf::from(p),
        };
        let max_attempts = raw.queue.max_attempts.unwrap_or(3);
        if max_attempts == 0 {
            return Err(invalid("queue.max_attempts", "must be at least 1".into()));
        }
        let tz_name = raw.triggers.time_zone.unwrap_or_else(|| "UTC".into());
        let time_zone = jiff::tz::TimeZone::get(&tz_name).map_err(|e| {
            invalid(
                "triggers.time_zone",
                format!("`{tz_name}` is not a time zone such as UTC or Europe/Berlin: {e}"),
            )
        })?;
        let hook_body_limit = match raw.triggers.hook_body_limit_bytes.unwrap_or(1 << 20) {
            0 => {
                return Err(invalid(
                    "triggers.hook_body_limit_bytes",
                    "must be at least 1".into(),
                ));
            }
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let mut label_aliases = Vec::new();
        for (alias, targets) in raw.labels.aliases.unwrap_or_default() {
            if alias.trim().is_empty() || targets.iter().any(|t| t.trim().is_empty()) {
                return Err(ConfigError::Invalid {
                    key: format!("labels.aliases.{alias}"),
                    message: "labels must not be empty".into(),
                });
            }
            if targets.is_empty() {
                return Err(ConfigError::Invalid {
                    key: format!("labels.aliases.{alias}"),
                    message: "an alias needs at least one label (every agent would serve it)"
                        .into(),
                });
            }
            label_aliases.push((alias, targets));
        }
        Ok(Config {
            label_aliases,
            time_zone,
            hook_body_limit,
            listen,
            data_dir,
            workflows_dir: raw
                .workflows_dir
                .unwrap_or_else(|| ".kiln/workflows".into()),
            lease,
            heartbeat,
            max_attempts,
            public_url,
            secret_key_file,
            max_claim_wait: secs(
                "queue.max_claim_wait_seconds",
                raw.queue.max_claim_wait_seconds,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let c = RawConfig::default().resolve("/data".into()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7171");
        assert_eq!(c.lease, Duration::from_secs(15));
        assert_eq!(c.heartbeat, Duration::from_secs(5));
        assert_eq!(c.data_dir, PathBuf::from("/data"));
        assert_eq!(c.time_zone, jiff::tz::TimeZone::UTC);
        assert_eq!(c.hook_body_limit, 1 << 20);
        assert!(
            c.label_aliases
                .contains(&("ubuntu-latest".into(), vec!["linux".into(), "x64".into()])),
            "{:?}",
            c.label_aliases
        );
    }

    #[test]
    fn label_aliases_replace_the_defaults_and_are_checked() {
        let raw =
            RawConfig::parse("k.toml", "[labels.aliases]\nbig = [\"linux\", \"gpu\"]\n").unwrap();
        let c = raw.resolve("/data".into()).unwrap();
        assert_eq!(
            c.label_aliases,
            vec![("big".into(), vec!["linux".into(), "gpu".into()])]
        );
        let bad = RawConfig::parse("k.toml", "[labels.aliases]\nall = []\n").unwrap();
        let err = bad.resolve("/data".into()).unwrap_err().to_string();
        assert!(err.contains("labels.aliases.all"), "{err}");
    }

    #[test]
    fn trigger_keys() {
        let raw = RawConfig::parse(
            "k.toml",
            "[triggers]\ntime_zone = \"Europe/Berlin\"\nhook_body_limit_bytes = 4096\n",
        )
        .unwrap();
        let c = raw.resolve("/d".into()).unwrap();
        assert_eq!(c.hook_body_limit, 4096);
        assert_eq!(c.time_zone.iana_name(), Some("Europe/Berlin"));
        let raw = RawConfig::parse("k.toml", "[triggers]\ntime_zone = \"Mars/Olympus\"\n").unwrap();
        let e = raw.resolve("/d".into()).unwrap_err();
        assert!(e.to_string().starts_with("triggers.time_zone"), "{e}");
    }

    #[test]
    fn forge_keys() {
        let c = RawConfig::default().resolve("/data".into()).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:7171");
        assert_eq!(c.secret_key_file, PathBuf::from("/data/secret.key"));
        let c = RawConfig::from_env(|k| {
            (k == "KILN_PUBLIC_URL").then(|| "https://ci.example.com/".to_string())
        })
        .unwrap()
        .resolve("/data".into())
        .unwrap();
        assert_eq!(c.public_url, "https://ci.example.com");
    }

    #[test]
    fn file_then_env_override() {
        let file = RawConfig::parse(
            "k.toml",
            "listen = \"127.0.0.1:9\"\n[queue]\nlease_seconds = 4\nheartbeat_seconds = 1\n",
        )
        .unwrap();
        let env =
            RawConfig::from_env(|k| (k == "KILN_LEASE_SECONDS").then(|| "6".to_string())).unwrap();
        let c = file.merge(env).resolve("/d".into()).unwrap();
        assert_eq!(c.listen.port(), 9);
        assert_eq!(c.lease, Duration::from_secs(6));
        assert_eq!(c.heartbeat, Duration::from_secs(1));
    }

    #[test]
    fn errors_name_the_key() {
        let e = RawConfig::parse("k.toml", "lisen = 1\n").unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let raw = RawConfig::parse("k.toml", "[queue]\nheartbeat_seconds = 20\n").unwrap();
        let e = raw.resolve("/d".into()).unwrap_err();
        assert!(e.to_string().starts_with("queue.heartbeat_seconds"), "{e}");
    }
}
