//! [`ForgeApi`](kiln_forge::api::ForgeApi) over Gitea's and Forgejo's API
//! (`https://HOST/api/v1`). Both copied GitHub's REST shapes for what kiln
//! uses, so the adapter is [`GithubLike`] with these differences:
//! - the token goes as `Authorization: token TOKEN`;
//! - pages are asked for with `limit=50` (their largest default page);
//! - the permission endpoint also answers `owner` (mapped to admin);
//! - statuses accept a `warning` state too, which kiln does not send.

use super::github::{Dialect, GithubLike};
use super::http::Http;
use kiln_forge::api::ApiResult;

/// A Gitea (or, with `forgejo`, Forgejo) API with one token.
pub fn gitea(
    client: reqwest::Client,
    api_url: &str,
    token: &str,
    forgejo: bool,
) -> ApiResult<GithubLike> {
    let http = Http::new(
        client,
        api_url,
        &[
            ("authorization", format!("token {token}")),
            ("accept", "application/json".into()),
        ],
    )?;
    Ok(GithubLike::with_dialect(
        http,
        if forgejo {
            Dialect::Forgejo
        } else {
            Dialect::Gitea
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeHttp, Reply};
    use kiln_forge::api::{CommitStatus, ForgeApi, Permission, StatusState};

    #[tokio::test]
    async fn gitea_speaks_with_its_token_header_and_page_size() {
        let fake = FakeHttp::start(|r| match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v1/repos/team/app/collaborators/root/permission") => {
                Reply::json(200, r#"{"permission":"owner","role_name":"owner"}"#)
            }
            ("POST", "/api/v1/repos/team/app/statuses/cafe") => Reply::json(201, r#"{"id":3}"#),
            ("POST", "/api/v1/repos/team/app/issues/4/comments") => {
                Reply::json(201, r#"{"id":55,"body":"x"}"#)
            }
            ("PATCH", "/api/v1/repos/team/app/issues/comments/55") => Reply::json(200, "{}"),
            ("GET", "/api/v1/repos/team/app/pulls") => Reply::json(
                200,
                r#"[{"number":4,"user":{"login":"dev"},"head":{"ref":"fix","sha":"cafe","repo":{"full_name":"team/app"}},"base":{"ref":"main","sha":"b","repo":{"full_name":"team/app"}}}]"#,
            ),
            ("GET", "/api/v1/repos/team/app/issues/4/comments") => Reply::json(
                200,
                r#"[{"id":50,"user":{"login":"a"},"body":"hi"},{"id":56,"user":{"login":"b"},"body":"!testme"}]"#,
            ),
            _ => Reply::json(404, "{}"),
        })
        .await;
        let base = format!("{}/api/v1", fake.url);
        let api = gitea(super::super::http::client().unwrap(), &base, "tok", true).unwrap();
        assert_eq!(api.name(), "forgejo");
        assert_eq!(
            api.permission("team/app", "root").await,
            Ok(Permission::Admin)
        );
        assert_eq!(
            api.permission("team/app", "nobody").await,
            Ok(Permission::None)
        );
        api.set_status(
            "team/app",
            "cafe",
            &CommitStatus {
                state: StatusState::Pending,
                context: "kiln/ci".into(),
                description: "queued".into(),
                target_url: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(api.create_comment("team/app", 4, "hello").await, Ok(55));
        api.edit_comment("team/app", 4, 55, "done").await.unwrap();
        let prs = api.open_pull_requests("team/app").await.unwrap();
        assert_eq!(prs.len(), 1);
        assert!(!prs[0].head_repo_is_fork);
        let comments = api.comments_after("team/app", 4, 50).await.unwrap();
        assert_eq!(comments.len(), 1);
        assert_eq!(comments[0].body, "!testme");

        let reqs = fake.requests();
        assert!(
            reqs.iter()
                .all(|r| r.header("authorization") == Some("token tok"))
        );
        let status = reqs
            .iter()
            .find(|r| r.path.ends_with("/statuses/cafe"))
            .unwrap();
        assert_eq!(
            status.json(),
            serde_json::json!({"state": "pending", "context": "kiln/ci", "description": "queued"})
        );
        let pulls = reqs.iter().find(|r| r.path.ends_with("/pulls")).unwrap();
        assert_eq!(pulls.query, "state=open&limit=50");
    }
}
