//! A job's `container:` and `services:` with their expressions rendered and
//! their `options:` parsed: everything the container executor needs to
//! create the job's containers, checked before anything is created.
//!
//! Expressions see the job's fixed contexts (`github`, `needs`, `matrix`,
//! `inputs`, `vars`, `secrets`, `strategy`, `runner`), as on GitHub; the
//! `env` and `steps` contexts are empty here.

use std::path::Path;
use std::time::Duration;

use kiln_model::Value;
use kiln_model::workflow::{Container, Job, Pairs, Service, Template};
use kiln_pipeline::expr::{self, StatusCheck};

use crate::config::PullPolicy;
use crate::runner::context::{BaseContexts, Ctx};

pub use super::spec_error::{BadValue, OptionError, SpecError};

/// The containers of one job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobContainers {
    /// Where the steps run; `None`: on the host, as processes.
    pub container: Option<ContainerSpec>,
    pub services: Vec<ServiceSpec>,
    /// The job's `weight:`, for its limits.
    pub weight: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    pub image: String,
    pub env: Vec<(String, String)>,
    /// `SRC:DST[:MODE]` or a bare `DST` (an anonymous volume).
    pub volumes: Vec<String>,
    /// `[IP:]HOST:CONTAINER[/PROTO]` or `CONTAINER[/PROTO]`.
    pub ports: Vec<String>,
    pub credentials: Option<(String, String)>,
    pub options: Options,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// The name it is reachable by from the job's container.
    pub name: String,
    pub spec: ContainerSpec,
}

/// The `docker run` flags kiln understands in `options:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub cpus: Option<f64>,
    pub memory: Option<i64>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub entrypoint: Option<String>,
    pub hostname: Option<String>,
    pub privileged: bool,
    pub init: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub shm_size: Option<i64>,
    pub tmpfs: Vec<String>,
    pub volumes: Vec<String>,
    pub network_aliases: Vec<String>,
    pub add_hosts: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub pull: Option<PullPolicy>,
    pub health: Health,
}

/// `--health-*` options: a check kiln runs itself (through exec) until it
/// passes, before the job's first step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// Run with `sh -c`.
    pub cmd: Option<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
}

impl JobContainers {
    pub fn needs_engine(&self) -> bool {
        self.container.is_some() || !self.services.is_empty()
    }
}

/// Renders and checks the job's `container:` and `services:`.
pub fn render(
    job: &Job,
    contexts: &BaseContexts,
    workspace: &Path,
) -> Result<JobContainers, SpecError> {
    let empty = Value::object::<&str>([]);
    let ctx = Ctx {
        base: contexts,
        env: &empty,
        steps: &empty,
        job: &empty,
        status: StatusCheck::Success,
        workspace,
    };
    let container = job
        .container
        .as_ref()
        .map(|c| render_container(c, &ctx).map_err(|e| e.within("container")))
        .transpose()?;
    let mut services = Vec::with_capacity(job.services.len());
    for s in &job.services {
        let spec = render_service(s, &ctx).map_err(|e| e.within(format!("services.{}", s.name)))?;
        check_name(&s.name)?;
        services.push(ServiceSpec {
            name: s.name.clone(),
            spec,
        });
    }
    Ok(JobContainers {
        container,
        services,
        weight: job.weight,
    })
}

fn check_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(SpecError::ServiceName(name.to_owned()))
    }
}

fn render_one(tpl: &Template, ctx: &Ctx<'_>) -> Result<String, SpecError> {
    if tpl.is_literal() {
        return Ok(tpl.src.clone());
    }
    let parsed = expr::parse_template(&tpl.src)?;
    Ok(parsed.render(ctx)?)
}

fn render_pairs(pairs: &Pairs, ctx: &Ctx<'_>) -> Result<Vec<(String, String)>, SpecError> {
    pairs
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                render_one(v, ctx).map_err(|e| e.within(format!("env `{k}`")))?,
            ))
        })
        .collect()
}

fn render_list(
    list: &[Template],
    what: &'static str,
    ctx: &Ctx<'_>,
) -> Result<Vec<String>, SpecError> {
    list.iter()
        .map(|t| render_one(t, ctx).map_err(|e| e.within(what)))
        .collect()
}

fn render_container(c: &Container, ctx: &Ctx<'_>) -> Result<ContainerSpec, SpecError> {
    let credentials = c
        .credentials
        .as_ref()
        .map(|cr| {
            Ok::<_, SpecError>((
                render_one(&cr.username, ctx)?,
                render_one(&cr.password, ctx)?,
            ))
        })
        .transpose()
        .map_err(|e| e.within("credentials"))?;
    build(
        render_one(&c.image, ctx).map_err(|e| e.within("image"))?,
        render_pairs(&c.env, ctx)?,
        render_list(&c.volumes, "volumes", ctx)?,
        render_list(&c.ports, "ports", ctx)?,
        credentials,
        c.options.as_ref().map(|o| render_one(o, ctx)).transpose()?,
    )
}

fn render_service(s: &Service, ctx: &Ctx<'_>) -> Result<ContainerSpec, SpecError> {
    let credentials = s
        .credentials
        .as_ref()
        .map(|cr| {
            Ok::<_, SpecError>((
                render_one(&cr.username, ctx)?,
                render_one(&cr.password, ctx)?,
            ))
        })
        .transpose()
        .map_err(|e| e.within("credentials"))?;
    build(
        render_one(&s.image, ctx).map_err(|e| e.within("image"))?,
        render_pairs(&s.env, ctx)?,
        render_list(&s.volumes, "volumes", ctx)?,
        render_list(&s.ports, "ports", ctx)?,
        credentials,
        s.options.as_ref().map(|o| render_one(o, ctx)).transpose()?,
    )
}

fn build(
    image: String,
    env: Vec<(String, String)>,
    volumes: Vec<String>,
    ports: Vec<String>,
    credentials: Option<(String, String)>,
    options: Option<String>,
) -> Result<ContainerSpec, SpecError> {
    let image = image.trim().to_owned();
    if image.is_empty() {
        return Err(SpecError::EmptyImage);
    }
    for p in &ports {
        parse_port(p)?;
    }
    let options = match options {
        Some(o) => parse_options(&o).map_err(SpecError::Options)?,
        None => Options::default(),
    };
    Ok(ContainerSpec {
        image,
        env,
        volumes,
        ports,
        credentials,
        options,
    })
}

/// A published port: `(host ip, host port, container port/proto)`.
pub fn parse_port(text: &str) -> Result<(Option<String>, Option<String>, String), SpecError> {
    let bad = || SpecError::Port(text.to_owned());
    let (spec, proto) = match text.rsplit_once('/') {
        Some((s, p)) if matches!(p, "tcp" | "udp" | "sctp") => (s, p),
        Some(_) => return Err(bad()),
        None => (text, "tcp"),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let number = |s: &str| s.parse::<u16>().map(|_| s.to_owned()).map_err(|_| bad());
    let (ip, host, container) = match parts.as_slice() {
        [c] => (None, None, number(c)?),
        [h, c] => (None, Some(number(h)?), number(c)?),
        [ip, h, c] => (
            Some((*ip).to_owned()),
            if h.is_empty() { None } else { Some(number(h)?) },
            number(c)?,
        ),
        _ => return Err(bad()),
    };
    Ok((ip, host, format!("{container}/{proto}")))
}

/// Splits `options:` as a shell would split words (quotes, backslashes),
/// without expansions.
fn words(text: &str) -> Result<Vec<String>, OptionError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(OptionError::Unterminated("single")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err(OptionError::Unterminated("double")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(OptionError::Unterminated("double")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

const SUPPORTED: &str = "--cpus, --memory/-m, --env/-e, --user/-u, --entrypoint, --hostname/-h, \
                         --privileged, --init, --cap-add, --cap-drop, --shm-size, --tmpfs, \
                         --volume/-v, --network-alias, --add-host, --label/-l, --pull, \
                         --health-cmd, --health-interval, --health-timeout, --health-retries, \
                         --health-start-period";

/// Parses the `docker run` flags of `options:`.
pub fn parse_options(text: &str) -> Result<Options, OptionError> {
    let words = words(text)?;
    let mut o = Options::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f.to_owned(), Some(v.to_owned())),
            _ => (word.clone(), None),
        };
        if !flag.starts_with('-') {
            return Err(OptionError::NotAnOption(word.clone()));
        }
        let boolean = matches!(flag.as_str(), "--privileged" | "--init");
        let value = if boolean {
            match inline.as_deref() {
                None | Some("true") => "true".to_owned(),
                Some("false") => "false".to_owned(),
                Some(v) => {
                    return Err(OptionError::NotABool {
                        flag,
                        value: v.to_owned(),
                    });
                }
            }
        } else {
            match inline {
                Some(v) => v,
                None => {
                    let v = words
                        .get(i)
                        .ok_or_else(|| OptionError::NeedsValue(flag.clone()))?
                        .clone();
                    i += 1;
                    v
                }
            }
        };
        let flag_err = |problem: BadValue| OptionError::Value {
            flag: flag.clone(),
            problem,
        };
        match flag.as_str() {
            "--cpus" => {
                let n: f64 = value
                    .parse()
                    .ok()
                    .filter(|n: &f64| *n > 0.0 && n.is_finite())
                    .ok_or_else(|| flag_err(BadValue::NotPositive(value.clone())))?;
                o.cpus = Some(n);
            }
            "--memory" | "-m" => o.memory = Some(parse_size(&value).map_err(flag_err)?),
            "--shm-size" => o.shm_size = Some(parse_size(&value).map_err(flag_err)?),
            "--env" | "-e" => match value.split_once('=') {
                Some((k, v)) => o.env.push((k.to_owned(), v.to_owned())),
                None => {
                    // `-e NAME` passes kiln's own value, as docker does.
                    if let Ok(v) = std::env::var(&value) {
                        o.env.push((value.clone(), v));
                    }
                }
            },
            "--label" | "-l" => {
                let (k, v) = value.split_once('=').unwrap_or((value.as_str(), ""));
                o.labels.push((k.to_owned(), v.to_owned()));
            }
            "--user" | "-u" => o.user = Some(value),
            "--entrypoint" => o.entrypoint = Some(value),
            "--hostname" | "-h" => o.hostname = Some(value),
            "--privileged" => o.privileged = value == "true",
            "--init" => o.init = value == "true",
            "--cap-add" => o.cap_add.push(value),
            "--cap-drop" => o.cap_drop.push(value),
            "--tmpfs" => o.tmpfs.push(value),
            "--volume" | "-v" => o.volumes.push(value),
            "--network-alias" => o.network_aliases.push(value),
            "--add-host" => o.add_hosts.push(value),
            "--pull" => {
                o.pull = Some(match value.as_str() {
                    "missing" => PullPolicy::IfNotPresent,
                    other => PullPolicy::parse(other).map_err(|e| flag_err(e.into()))?,
                })
            }
            "--health-cmd" => o.health.cmd = Some(value),
            "--health-interval" => {
                o.health.interval = Some(parse_duration(&value).map_err(flag_err)?)
            }
            "--health-timeout" => {
                o.health.timeout = Some(parse_duration(&value).map_err(flag_err)?)
            }
            "--health-start-period" => {
                o.health.start_period = Some(parse_duration(&value).map_err(flag_err)?)
            }
            "--health-retries" => {
                o.health.retries = Some(
                    value
                        .parse()
                        .map_err(|_| flag_err(BadValue::NotANumber(value.clone())))?,
                )
            }
            other => {
                return Err(OptionError::Unsupported {
                    flag: other.to_owned(),
                    supported: SUPPORTED,
                });
            }
        }
    }
    Ok(o)
}

/// `512m`, `2g`, `1024k`, `100b`, `100` (bytes).
fn parse_size(text: &str) -> Result<i64, BadValue> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|s| !s.is_empty()).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| BadValue::NotASize(text.to_owned()))?;
    if !(n >= 0.0 && n.is_finite()) {
        return Err(BadValue::NotASize(text.to_owned()));
    }
    Ok((n * mult as f64) as i64)
}

/// `500ms`, `10s`, `1m`, `1h`, `1m30s`.
fn parse_duration(text: &str) -> Result<Duration, BadValue> {
    let bad = || BadValue::NotADuration(text.to_owned());
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..end].parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_parsed_like_docker_run_flags() {
        let o = parse_options(
            "--cpus 1.5 -m=512m -e A=1 --env 'B=two words' --health-cmd \"pg_isready -U x\" \
             --health-interval 2s --health-retries=5 --network-alias db2 --pull never --init",
        )
        .unwrap();
        assert_eq!(o.cpus, Some(1.5));
        assert_eq!(o.memory, Some(512 << 20));
        assert_eq!(
            o.env,
            [("A".into(), "1".into()), ("B".into(), "two words".into())]
        );
        assert_eq!(o.health.cmd.as_deref(), Some("pg_isready -U x"));
        assert_eq!(o.health.interval, Some(Duration::from_secs(2)));
        assert_eq!(o.health.retries, Some(5));
        assert_eq!(o.network_aliases, ["db2"]);
        assert_eq!(o.pull, Some(PullPolicy::Never));
        assert!(o.init);
    }

    #[test]
    fn unknown_options_are_refused_by_name() {
        let e = parse_options("--cpus 1 --network host")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("`--network` is not supported"), "{e}");
        assert!(
            parse_options("--cpus")
                .unwrap_err()
                .to_string()
                .contains("needs a value")
        );
        assert!(parse_options("'open").is_err());
    }

    #[test]
    fn sizes_durations_and_ports() {
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1024k").unwrap(), 1 << 20);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("10").is_err());
        assert_eq!(parse_port("80").unwrap(), (None, None, "80/tcp".into()));
        assert_eq!(
            parse_port("8080:80/udp").unwrap(),
            (None, Some("8080".into()), "80/udp".into())
        );
        assert_eq!(
            parse_port("127.0.0.1::80").unwrap(),
            (Some("127.0.0.1".into()), None, "80/tcp".into())
        );
        assert!(parse_port("x:80").is_err());
    }
}
