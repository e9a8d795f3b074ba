//! Where and how a job runs: `defaults.run`, `concurrency`, `environment`
//! (its `health-check` is read by `deploy`), `container` and `services`.

use super::cx::Cx;
use super::deploy;
use super::step;
use kiln_model::workflow::{
    Concurrency, Container, Credentials, Dyn, Environment, RunDefaults, Service, Template,
};
use marked_yaml::Node;

pub(crate) fn defaults(cx: &mut Cx<'_>, n: &Node) -> RunDefaults {
    let mut d = RunDefaults::default();
    let Some(Some(map)) = cx.opt_mapping(n, "`defaults`") else {
        return d;
    };
    for (k, v) in map.iter() {
        match k.as_str() {
            "run" => {
                let Some(Some(run)) = cx.opt_mapping(v, "`defaults.run`") else {
                    continue;
                };
                for (k, v) in run.iter() {
                    match k.as_str() {
                        "shell" => d.shell = step::shell(cx, v),
                        "working-directory" => {
                            d.working_directory = cx.template(v, "`working-directory`")
                        }
                        _ => {
                            cx.unknown_key(k, "`defaults.run`", &["shell", "working-directory"]);
                        }
                    }
                }
            }
            _ => {
                cx.unknown_key(k, "`defaults`", &["run"]);
            }
        }
    }
    d
}

pub(crate) fn concurrency(cx: &mut Cx<'_>, n: &Node) -> Option<Concurrency> {
    if let Node::Scalar(_) = n {
        let group = cx.template(n, "`concurrency`")?;
        return Some(Concurrency {
            group,
            cancel_in_progress: Dyn::Lit(false),
        });
    }
    let map = cx.mapping(n, "`concurrency`")?;
    let mut group = None;
    let mut cancel = Dyn::Lit(false);
    for (k, v) in map.iter() {
        match k.as_str() {
            "group" => group = cx.template(v, "`group`"),
            "cancel-in-progress" => {
                cancel = cx
                    .dyn_bool(v, "`cancel-in-progress`")
                    .unwrap_or(Dyn::Lit(false))
            }
            _ => {
                cx.unknown_key(k, "`concurrency`", &["group", "cancel-in-progress"]);
            }
        }
    }
    if group.is_none() {
        let at = cx.at(n);
        cx.error(at, "`concurrency` needs a `group`");
    }
    Some(Concurrency {
        group: group?,
        cancel_in_progress: cancel,
    })
}

pub(crate) fn environment(cx: &mut Cx<'_>, n: &Node) -> Option<Environment> {
    if let Node::Scalar(_) = n {
        return Some(Environment {
            name: cx.template(n, "`environment`")?,
            url: None,
            approval: Dyn::Lit(false),
            health_check: None,
        });
    }
    let map = cx.mapping(n, "`environment`")?;
    let (mut name, mut url, mut health_check) = (None, None, None);
    let mut approval = Dyn::Lit(false);
    for (k, v) in map.iter() {
        match k.as_str() {
            "name" => name = cx.template(v, "`name`"),
            "url" => url = cx.template(v, "`url`"),
            "approval" => approval = cx.dyn_bool(v, "`approval`").unwrap_or(Dyn::Lit(false)),
            "health-check" => health_check = deploy::health_check(cx, k, v),
            _ => {
                cx.unknown_key(k, "`environment`", ENVIRONMENT_KEYS);
            }
        }
    }
    if name.is_none() {
        let at = cx.at(n);
        cx.error(at, "`environment` needs a `name`");
    }
    Some(Environment {
        name: name?,
        url,
        approval,
        health_check,
    })
}

const ENVIRONMENT_KEYS: &[&str] = &["name", "url", "approval", "health-check"];

const CONTAINER_KEYS: &[&str] = &["image", "env", "options", "volumes", "credentials", "ports"];

pub(crate) fn container(cx: &mut Cx<'_>, n: &Node) -> Option<Container> {
    if let Node::Scalar(_) = n {
        let image = cx.template(n, "`container`")?;
        return Some(Container {
            image,
            env: Vec::new(),
            options: None,
            volumes: Vec::new(),
            credentials: None,
            ports: Vec::new(),
        });
    }
    let map = cx.mapping(n, "`container`")?;
    let mut c = Container {
        image: Template::new("", cx.at(n).loc),
        env: Vec::new(),
        options: None,
        volumes: Vec::new(),
        credentials: None,
        ports: Vec::new(),
    };
    let mut saw_image = false;
    for (k, v) in map.iter() {
        match k.as_str() {
            "image" => {
                saw_image = true;
                if let Some(t) = cx.template(v, "`image`") {
                    c.image = t;
                }
            }
            "env" => c.env = cx.pairs(v, "`env`"),
            "options" => c.options = cx.template(v, "`options`"),
            "volumes" => c.volumes = templates(cx, v, "`volumes`"),
            "ports" => c.ports = templates(cx, v, "`ports`"),
            "credentials" => c.credentials = credentials(cx, v),
            _ => {
                cx.unknown_key(k, "`container`", CONTAINER_KEYS);
            }
        }
    }
    if !saw_image {
        let at = cx.at(n);
        cx.error(at, "`container` needs an `image`");
    }
    Some(c)
}

pub(crate) fn services(cx: &mut Cx<'_>, n: &Node) -> Vec<Service> {
    let Some(Some(map)) = cx.opt_mapping(n, "`services`") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, spec) in map.iter() {
        let place = format!("service `{}`", name.as_str());
        let Some(m) = cx.mapping(spec, &place) else {
            continue;
        };
        let at = cx.at_scalar(name);
        let mut s = Service {
            name: name.as_str().to_owned(),
            image: Template::new("", at.loc),
            env: Vec::new(),
            ports: Vec::new(),
            options: None,
            loc: at.loc,
            volumes: Vec::new(),
            credentials: None,
        };
        let mut saw_image = false;
        for (k, v) in m.iter() {
            match k.as_str() {
                "image" => {
                    saw_image = true;
                    if let Some(t) = cx.template(v, "`image`") {
                        s.image = t;
                    }
                }
                "env" => s.env = cx.pairs(v, "`env`"),
                "ports" => s.ports = templates(cx, v, "`ports`"),
                "options" => s.options = cx.template(v, "`options`"),
                "volumes" => s.volumes = templates(cx, v, "`volumes`"),
                "credentials" => s.credentials = credentials(cx, v),
                _ => {
                    cx.unknown_key(k, &place, CONTAINER_KEYS);
                }
            }
        }
        if !saw_image {
            cx.error(at, format!("{place} needs an `image`"));
        }
        out.push(s);
    }
    out
}

fn templates(cx: &mut Cx<'_>, n: &Node, what: &str) -> Vec<Template> {
    match cx.sequence(n, what) {
        Some(items) => items.iter().filter_map(|i| cx.template(i, what)).collect(),
        None => Vec::new(),
    }
}

fn credentials(cx: &mut Cx<'_>, n: &Node) -> Option<Credentials> {
    let map = cx.mapping(n, "`credentials`")?;
    let (mut username, mut password) = (None, None);
    for (k, v) in map.iter() {
        match k.as_str() {
            "username" => username = cx.template(v, "`username`"),
            "password" => password = cx.template(v, "`password`"),
            _ => {
                cx.unknown_key(k, "`credentials`", &["username", "password"]);
            }
        }
    }
    match (username, password) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        _ => {
            let at = cx.at(n);
            cx.error(at, "`credentials` needs both `username` and `password`");
            None
        }
    }
}
