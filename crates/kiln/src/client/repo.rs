//! `kiln repo add`, `kiln repo list` and `kiln repo forge`.

use crate::client::args::{ForgeArgs, ListArgs, RepoAddArgs, RepoForgeArgs};
use crate::client::error::Error;
use crate::client::table::{Align, Table, ago};
use crate::client::{Ctx, print, print_json};
use crate::exit;
use jiff::Timestamp;
use kiln_client::api::call;
use kiln_proto::api::{AddRepo, ForgeKind, ForgeSettings, RepoInfo, TriggerSettingsRequest};

/// The webhook secret: from `--webhook-secret-file`, else
/// `KILN_WEBHOOK_SECRET`, else none. Never from the command line, where
/// it would show in the process list and the shell's history.
fn webhook_secret(args: &RepoAddArgs) -> Result<Option<String>, Error> {
    let secret = match &args.webhook_secret_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("--webhook-secret-file {}: {e}", path.display())))?,
        None => match std::env::var("KILN_WEBHOOK_SECRET") {
            Ok(s) => s,
            Err(_) => return Ok(None),
        },
    };
    let secret = secret.trim().to_owned();
    if secret.is_empty() {
        return Err(Error::Usage("the webhook secret is empty".into()));
    }
    Ok(Some(secret))
}

/// The forge settings the flags describe; `None` without `--forge`. The
/// token is read here (from the variable or file named) and sent to the
/// server only.
fn forge_settings(args: &ForgeArgs) -> Result<Option<ForgeSettings>, Error> {
    let Some(kind) = &args.forge else {
        return Ok(None);
    };
    let kind: ForgeKind = kind.parse().map_err(Error::Usage)?;
    let token = match (&args.forge_token_env, &args.forge_token_file) {
        (Some(var), _) => std::env::var(var)
            .map_err(|_| Error::Usage(format!("--forge-token-env: variable {var} is not set")))?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("--forge-token-file {}: {e}", path.display())))?,
        (None, None) => {
            return Err(Error::Usage(
                "--forge needs a token: --forge-token-env VAR or --forge-token-file PATH".into(),
            ));
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(Error::Usage("the forge token is empty".into()));
    }
    Ok(Some(ForgeSettings {
        kind,
        api_url: args.forge_url.clone(),
        repo: args.forge_repo.clone(),
        token,
    }))
}

pub async fn add(ctx: &Ctx, args: &RepoAddArgs) -> Result<i32, Error> {
    let req = AddRepo {
        name: args.name.clone(),
        url: args.url.clone(),
        triggers: Some(TriggerSettingsRequest {
            poll_interval_secs: args.poll_interval,
            webhook_secret: webhook_secret(args)?,
            fork_approval: args.no_fork_approval.then_some(false),
            command_allowlist: args.allow.clone(),
            reply_to_outsiders: args.no_outsider_reply.then_some(false),
            priority: args.priority,
        }),
        forge: forge_settings(&args.forge)?,
    };
    let raw = ctx.client.call_raw(&call::add_repo(&req)).await?;
    if args.json {
        print_json(&raw.json)?;
    } else {
        print(&format!(
            "added {} ({})\nnext: kiln trigger {}\n",
            raw.value.name, raw.value.url, raw.value.name
        ))?;
    }
    Ok(exit::SUCCESS)
}

pub async fn forge(ctx: &Ctx, args: &RepoForgeArgs) -> Result<i32, Error> {
    let raw = if args.remove {
        ctx.client
            .call_raw(&call::remove_repo_forge(&args.name))
            .await?
    } else {
        let settings = forge_settings(&args.forge)?
            .ok_or_else(|| Error::Usage("give --forge KIND (with a token), or --remove".into()))?;
        ctx.client
            .call_raw(&call::set_repo_forge(&args.name, &settings))
            .await?
    };
    if args.json {
        print_json(&raw.json)?;
    } else {
        match &raw.value.forge {
            Some(f) => print(&format!(
                "{} reports to {} {} ({}); token stored encrypted\n",
                raw.value.name, f.kind, f.repo, f.api_url
            ))?,
            None => print(&format!("{} has no forge now\n", raw.value.name))?,
        }
    }
    Ok(exit::SUCCESS)
}

pub async fn list(ctx: &Ctx, args: &ListArgs) -> Result<i32, Error> {
    let raw = ctx.client.call_raw(&call::repos()).await?;
    if args.json {
        print_json(&raw.json)?;
    } else if raw.value.is_empty() {
        print("no repositories yet: add one with `kiln repo add NAME URL`\n")?;
    } else {
        print(&repo_table(&raw.value, ctx.now))?;
    }
    Ok(exit::SUCCESS)
}

fn repo_table(repos: &[RepoInfo], now: Timestamp) -> String {
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("URL", Align::Left),
        ("POLL", Align::Left),
        ("WEBHOOK", Align::Left),
        ("FORGE", Align::Left),
        ("ADDED", Align::Left),
    ]);
    for r in repos {
        let forge = match &r.forge {
            Some(f) => format!("{} {}", f.kind, f.repo),
            None => "-".to_owned(),
        };
        let (poll, hook) = match &r.triggers {
            Some(t) if t.poll_interval_secs == 0 => ("off".to_owned(), t.webhook_secret_set),
            Some(t) => (format!("{}s", t.poll_interval_secs), t.webhook_secret_set),
            None => ("-".to_owned(), false),
        };
        t.row(vec![
            r.name.as_str().into(),
            r.url.as_str().into(),
            poll.into(),
            if hook { "secret set" } else { "-" }.into(),
            forge.into(),
            ago(now, r.created_at).into(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_repos() {
        let now: Timestamp = "2025-03-01T12:00:00Z".parse().expect("ts");
        let repos = vec![
            RepoInfo {
                name: "web".into(),
                url: "https://git.example.com/web.git".into(),
                created_at: "2025-03-01T11:00:00Z".parse().expect("ts"),
                triggers: Some(kiln_proto::api::RepoTriggers {
                    poll_interval_secs: 60,
                    webhook_secret_set: true,
                    fork_approval: true,
                    command_allowlist: vec![],
                    reply_to_outsiders: true,
                    priority: 0,
                }),
                forge: Some(kiln_proto::api::ForgeInfo {
                    kind: ForgeKind::Gitea,
                    api_url: "https://git.example.com/api/v1".into(),
                    repo: "team/web".into(),
                    token_set: true,
                }),
            },
            RepoInfo {
                name: "tools".into(),
                url: "/srv/git/tools".into(),
                created_at: "2025-03-01T11:59:00Z".parse().expect("ts"),
                triggers: Some(kiln_proto::api::RepoTriggers {
                    poll_interval_secs: 0,
                    webhook_secret_set: false,
                    fork_approval: true,
                    command_allowlist: vec![],
                    reply_to_outsiders: true,
                    priority: 0,
                }),
                forge: None,
            },
        ];
        assert_eq!(
            repo_table(&repos, now),
            "NAME   URL                              POLL  WEBHOOK     FORGE           ADDED\n\
             web    https://git.example.com/web.git  60s   secret set  gitea team/web  1h ago\n\
             tools  /srv/git/tools                   off   -           -               1m ago\n"
        );
    }
}
