//! `kiln repo add` and `kiln repo list`.

use crate::client::args::{ListArgs, RepoAddArgs};
use crate::client::error::Error;
use crate::client::table::{Align, Table, ago};
use crate::client::{Ctx, print, print_json};
use crate::exit;
use jiff::Timestamp;
use kiln_client::api::call;
use kiln_proto::api::{AddRepo, RepoInfo, TriggerSettingsRequest};

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
        }),
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
        ("ADDED", Align::Left),
    ]);
    for r in repos {
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
                }),
            },
        ];
        assert_eq!(
            repo_table(&repos, now),
            "NAME   URL                              POLL  WEBHOOK     ADDED\n\
             web    https://git.example.com/web.git  60s   secret set  1h ago\n\
             tools  /srv/git/tools                   off   -           1m ago\n"
        );
    }
}
