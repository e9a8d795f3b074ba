//! `kiln repo add` and `kiln repo list`.

use crate::client::args::{ListArgs, RepoAddArgs};
use crate::client::error::Error;
use crate::client::table::{Align, Table, ago};
use crate::client::{Ctx, print, print_json};
use crate::exit;
use jiff::Timestamp;
use kiln_client::api::call;
use kiln_proto::api::{AddRepo, RepoInfo};

pub async fn add(ctx: &Ctx, args: &RepoAddArgs) -> Result<i32, Error> {
    let req = AddRepo {
        name: args.name.clone(),
        url: args.url.clone(),
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
        ("ADDED", Align::Left),
    ]);
    for r in repos {
        t.row(vec![
            r.name.as_str().into(),
            r.url.as_str().into(),
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
            },
            RepoInfo {
                name: "tools".into(),
                url: "/srv/git/tools".into(),
                created_at: "2025-03-01T11:59:00Z".parse().expect("ts"),
            },
        ];
        assert_eq!(
            repo_table(&repos, now),
            "NAME   URL                              ADDED\n\
             web    https://git.example.com/web.git  1h ago\n\
             tools  /srv/git/tools                   1m ago\n"
        );
    }
}
