//! [`ForgeApi`] over GitHub's REST API, and over Gitea's and Forgejo's,
//! which copied its shapes (see [`super::gitea`] for what differs).
//!
//! Endpoints (under the API root, `https://api.github.com` or
//! `https://HOST/api/v3` for GitHub Enterprise):
//! - permission: `GET /repos/{o}/{r}/collaborators/{user}/permission`
//!   (404: the forge does not know the user → [`Permission::None`]);
//! - status: `POST /repos/{o}/{r}/statuses/{sha}`;
//! - comments: `POST /repos/{o}/{r}/issues/{n}/comments`,
//!   `PATCH /repos/{o}/{r}/issues/comments/{id}`,
//!   `GET /repos/{o}/{r}/issues/{n}/comments` (all pages, oldest first;
//!   filtered to ids above `after`: `since` filters by time, not id);
//! - pull requests: `GET /repos/{o}/{r}/pulls?state=open`,
//!   `GET /repos/{o}/{r}/pulls/{n}`.

use super::http::{Http, one_line, repo_path};
use kiln_forge::api::{
    ApiError, ApiResult, CommentInfo, CommitStatus, ForgeApi, Permission, PullRequestInfo,
    StatusState,
};
use reqwest::Method;
use serde::Deserialize;

/// The GitHub-shaped APIs kiln knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Github,
    Gitea,
    Forgejo,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Github => "github",
            Dialect::Gitea => "gitea",
            Dialect::Forgejo => "forgejo",
        }
    }

    /// The page-size query parameter and its largest value.
    fn page_size(self) -> &'static str {
        match self {
            Dialect::Github => "per_page=100",
            Dialect::Gitea | Dialect::Forgejo => "limit=50",
        }
    }
}

/// A GitHub, Gitea or Forgejo API with one token.
#[derive(Debug)]
pub struct GithubLike {
    http: Http,
    dialect: Dialect,
}

/// GitHub: `Authorization: Bearer TOKEN`, the v3 media type and API version.
pub fn github(client: reqwest::Client, api_url: &str, token: &str) -> ApiResult<GithubLike> {
    Ok(GithubLike {
        http: Http::new(
            client,
            api_url,
            &[
                ("authorization", format!("Bearer {token}")),
                ("accept", "application/vnd.github+json".into()),
                ("x-github-api-version", "2022-11-28".into()),
            ],
        )?,
        dialect: Dialect::Github,
    })
}

impl GithubLike {
    pub(crate) fn with_dialect(http: Http, dialect: Dialect) -> GithubLike {
        GithubLike { http, dialect }
    }
}

#[derive(Deserialize)]
struct PermissionBody {
    permission: String,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct RepoRef {
    full_name: String,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    #[serde(default)]
    repo: Option<RepoRef>,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    user: User,
    head: Branch,
    base: Branch,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    user: Option<User>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

/// GitHub's `permission` (legacy: admin/write/read/none; `maintain` and
/// `triage` also accepted) and Gitea's (`owner` too).
pub(crate) fn permission_of(name: &str) -> Permission {
    match name {
        "admin" | "owner" => Permission::Admin,
        "maintain" | "write" => Permission::Write,
        "triage" | "read" => Permission::Read,
        _ => Permission::None,
    }
}

fn state_name(s: StatusState) -> &'static str {
    match s {
        StatusState::Pending => "pending",
        StatusState::Success => "success",
        StatusState::Failure => "failure",
        StatusState::Error => "error",
    }
}

fn pull_info(p: Pull) -> PullRequestInfo {
    let fork = match (&p.head.repo, &p.base.repo) {
        (Some(h), Some(b)) => !h.full_name.eq_ignore_ascii_case(&b.full_name),
        // A deleted head repository, or a forge that does not say.
        _ => true,
    };
    PullRequestInfo {
        number: p.number,
        head_sha: p.head.sha,
        head_ref: p.head.git_ref,
        base_ref: p.base.git_ref,
        head_repo_is_fork: fork,
        author: p.user.login,
    }
}

#[async_trait::async_trait]
impl ForgeApi for GithubLike {
    fn name(&self) -> &str {
        self.dialect.name()
    }

    async fn permission(&self, repo: &str, user: &str) -> ApiResult<Permission> {
        let path = format!(
            "/repos/{}/collaborators/{}/permission",
            repo_path(repo),
            super::http::encode(user)
        );
        let req = self.http.request(Method::GET, &path);
        match self.http.json::<PermissionBody>("permission", req).await {
            Ok(b) => Ok(permission_of(&b.permission)),
            Err(ApiError::NotFound(_)) => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }

    async fn set_status(&self, repo: &str, sha: &str, status: &CommitStatus) -> ApiResult<()> {
        let path = format!(
            "/repos/{}/statuses/{}",
            repo_path(repo),
            super::http::encode(sha)
        );
        let mut body = serde_json::json!({
            "state": state_name(status.state),
            "context": status.context,
            "description": one_line(&status.description, 140),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = url.clone().into();
        }
        let req = self.http.request(Method::POST, &path).json(&body);
        self.http.send("commit status", req).await.map(drop)
    }

    async fn create_comment(&self, repo: &str, pr: u64, body: &str) -> ApiResult<u64> {
        let path = format!("/repos/{}/issues/{pr}/comments", repo_path(repo));
        let req = self
            .http
            .request(Method::POST, &path)
            .json(&serde_json::json!({ "body": body }));
        Ok(self.http.json::<Created>("comment", req).await?.id)
    }

    async fn edit_comment(&self, repo: &str, _pr: u64, comment: u64, body: &str) -> ApiResult<()> {
        let path = format!("/repos/{}/issues/comments/{comment}", repo_path(repo));
        let req = self
            .http
            .request(Method::PATCH, &path)
            .json(&serde_json::json!({ "body": body }));
        self.http.send("comment edit", req).await.map(drop)
    }

    async fn open_pull_requests(&self, repo: &str) -> ApiResult<Vec<PullRequestInfo>> {
        let path = format!(
            "/repos/{}/pulls?state=open&{}",
            repo_path(repo),
            self.dialect.page_size()
        );
        let pulls: Vec<Pull> = self.http.pages("pull requests", &path).await?;
        Ok(pulls.into_iter().map(pull_info).collect())
    }

    async fn pull_request(&self, repo: &str, number: u64) -> ApiResult<PullRequestInfo> {
        let path = format!("/repos/{}/pulls/{number}", repo_path(repo));
        let req = self.http.request(Method::GET, &path);
        Ok(pull_info(self.http.json("pull request", req).await?))
    }

    async fn comments_after(&self, repo: &str, pr: u64, after: u64) -> ApiResult<Vec<CommentInfo>> {
        let path = format!(
            "/repos/{}/issues/{pr}/comments?{}",
            repo_path(repo),
            self.dialect.page_size()
        );
        let all: Vec<Comment> = self.http.pages("comments", &path).await?;
        let mut out: Vec<CommentInfo> = all
            .into_iter()
            .filter(|c| c.id > after)
            .map(|c| CommentInfo {
                id: c.id,
                author: c.user.map(|u| u.login).unwrap_or_default(),
                body: c.body.unwrap_or_default(),
            })
            .collect();
        out.sort_by_key(|c| c.id);
        Ok(out)
    }
}

/// Errors worth naming in tests.
#[cfg(test)]
pub(crate) fn is_unavailable(e: &ApiError) -> bool {
    matches!(e, ApiError::Unavailable(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeHttp, Reply};

    fn api(fake: &FakeHttp) -> GithubLike {
        github(super::super::http::client().unwrap(), &fake.url, "s3cret").unwrap()
    }

    #[tokio::test]
    async fn permission_maps_and_unknown_user_is_none() {
        let fake = FakeHttp::start(|r| match r.path.as_str() {
            "/repos/octo/web/collaborators/alice/permission" => {
                Reply::json(200, r#"{"permission":"write","role_name":"maintain"}"#)
            }
            "/repos/octo/web/collaborators/boss/permission" => {
                Reply::json(200, r#"{"permission":"admin"}"#)
            }
            "/repos/octo/web/collaborators/carol/permission" => {
                Reply::json(200, r#"{"permission":"read"}"#)
            }
            _ => Reply::json(404, r#"{"message":"Not Found"}"#),
        })
        .await;
        let a = api(&fake);
        assert_eq!(
            a.permission("octo/web", "alice").await,
            Ok(Permission::Write)
        );
        assert_eq!(
            a.permission("octo/web", "boss").await,
            Ok(Permission::Admin)
        );
        assert_eq!(
            a.permission("octo/web", "carol").await,
            Ok(Permission::Read)
        );
        assert_eq!(
            a.permission("octo/web", "ghost").await,
            Ok(Permission::None)
        );
        let reqs = fake.requests();
        assert_eq!(reqs[0].method, "GET");
        assert_eq!(reqs[0].header("authorization"), Some("Bearer s3cret"));
        assert_eq!(
            reqs[0].header("accept"),
            Some("application/vnd.github+json")
        );
        assert!(reqs[0].header("user-agent").unwrap().starts_with("kiln/"));
    }

    #[tokio::test]
    async fn status_is_posted_with_context_and_link() {
        let fake = FakeHttp::start(|_| Reply::json(201, r#"{"id":1}"#)).await;
        api(&fake)
            .set_status(
                "octo/web",
                "abc123",
                &CommitStatus {
                    state: StatusState::Failure,
                    context: "kiln/ci".into(),
                    description: "1 of 3 jobs failed: test".into(),
                    target_url: Some("http://kiln.example/api/v1/runs/4".into()),
                },
            )
            .await
            .unwrap();
        let r = &fake.requests()[0];
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/repos/octo/web/statuses/abc123")
        );
        assert_eq!(
            r.json(),
            serde_json::json!({
                "state": "failure",
                "context": "kiln/ci",
                "description": "1 of 3 jobs failed: test",
                "target_url": "http://kiln.example/api/v1/runs/4",
            })
        );
    }

    #[tokio::test]
    async fn comments_create_edit_and_list_across_pages() {
        let fake = FakeHttp::start(|r| match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/repos/octo/web/issues/7/comments") => Reply::json(201, r#"{"id":901}"#),
            ("PATCH", "/repos/octo/web/issues/comments/901") => Reply::json(200, r#"{"id":901}"#),
            ("GET", "/repos/octo/web/issues/7/comments") => match r.query.as_str() {
                "per_page=100" => Reply::json(
                    200,
                    r#"[{"id":5,"user":{"login":"a"},"body":"old"},{"id":9,"user":{"login":"b"},"body":"!testme"}]"#,
                )
                .header(
                    "link",
                    &format!("<{}/repos/octo/web/issues/7/comments?per_page=100&page=2>; rel=\"next\"", r.base),
                ),
                _ => Reply::json(200, r#"[{"id":12,"user":{"login":"c"},"body":"!testme --extra"}]"#),
            },
            _ => Reply::json(404, "{}"),
        })
        .await;
        let a = api(&fake);
        assert_eq!(a.create_comment("octo/web", 7, "hello").await, Ok(901));
        a.edit_comment("octo/web", 7, 901, "bye").await.unwrap();
        let got = a.comments_after("octo/web", 7, 5).await.unwrap();
        assert_eq!(
            got,
            vec![
                CommentInfo {
                    id: 9,
                    author: "b".into(),
                    body: "!testme".into()
                },
                CommentInfo {
                    id: 12,
                    author: "c".into(),
                    body: "!testme --extra".into()
                },
            ]
        );
        let reqs = fake.requests();
        assert_eq!(reqs[0].json(), serde_json::json!({ "body": "hello" }));
        assert_eq!(reqs[1].method, "PATCH");
        assert_eq!(reqs[1].json(), serde_json::json!({ "body": "bye" }));
        assert_eq!(reqs[3].query, "per_page=100&page=2");
    }

    #[tokio::test]
    async fn pull_requests_and_forks() {
        let pr = |n: u64, head_repo: &str| {
            format!(
                r#"{{"number":{n},"user":{{"login":"dev"}},"head":{{"ref":"feat","sha":"h{n}","repo":{head_repo}}},"base":{{"ref":"main","sha":"b","repo":{{"full_name":"octo/web"}}}}}}"#
            )
        };
        let list = format!(
            "[{},{},{}]",
            pr(1, r#"{"full_name":"octo/web"}"#),
            pr(2, r#"{"full_name":"mallory/web"}"#),
            pr(3, "null")
        );
        let one = pr(1, r#"{"full_name":"octo/web"}"#);
        let fake = FakeHttp::start(move |r| match r.path.as_str() {
            "/repos/octo/web/pulls" => Reply::json(200, &list),
            "/repos/octo/web/pulls/1" => Reply::json(200, &one),
            _ => Reply::json(404, "{}"),
        })
        .await;
        let a = api(&fake);
        let open = a.open_pull_requests("octo/web").await.unwrap();
        assert_eq!(
            open.iter()
                .map(|p| (p.number, p.head_repo_is_fork))
                .collect::<Vec<_>>(),
            [(1, false), (2, true), (3, true)]
        );
        assert_eq!(
            a.pull_request("octo/web", 1).await.unwrap(),
            PullRequestInfo {
                number: 1,
                head_sha: "h1".into(),
                head_ref: "feat".into(),
                base_ref: "main".into(),
                head_repo_is_fork: false,
                author: "dev".into(),
            }
        );
        assert!(matches!(
            a.pull_request("octo/web", 99).await,
            Err(ApiError::NotFound(_))
        ));
        assert_eq!(fake.requests()[0].query, "state=open&per_page=100");
    }

    #[tokio::test]
    async fn errors_are_classified() {
        let fake = FakeHttp::start(|r| match r.path.as_str() {
            "/repos/o/down/pulls/1" => Reply::json(502, "bad gateway"),
            "/repos/o/denied/pulls/1" => Reply::json(401, r#"{"message":"Bad credentials"}"#),
            "/repos/o/limited/pulls/1" => {
                Reply::json(403, "{}").header("x-ratelimit-remaining", "0")
            }
            _ => Reply::json(200, "not json"),
        })
        .await;
        let a = api(&fake);
        assert!(is_unavailable(
            &a.pull_request("o/down", 1).await.unwrap_err()
        ));
        assert!(matches!(
            a.pull_request("o/denied", 1).await,
            Err(ApiError::Unauthorized(_))
        ));
        assert!(is_unavailable(
            &a.pull_request("o/limited", 1).await.unwrap_err()
        ));
        assert!(matches!(
            a.pull_request("o/x", 1).await,
            Err(ApiError::Invalid(_))
        ));
        // Nothing listens: unavailable, and the message never has the token.
        let dead = github(
            super::super::http::client().unwrap(),
            "http://127.0.0.1:9",
            "s3cret",
        )
        .unwrap();
        let e = dead.pull_request("o/x", 1).await.unwrap_err();
        assert!(is_unavailable(&e), "{e}");
        assert!(!e.to_string().contains("s3cret"));
        assert!(!format!("{dead:?}").contains("s3cret"));
    }
}
