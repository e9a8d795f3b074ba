//! [`ForgeApi`] over GitLab's REST API (`https://HOST/api/v4`), token in
//! the `PRIVATE-TOKEN` header. The project id is the URL-encoded full path
//! (`group%2Fsub%2Fname`); pull requests are merge requests, numbered by
//! their `iid`; comments are the merge request's notes (system notes —
//! "added 1 commit" — are left out).
//!
//! Permission: GitLab knows access levels, not GitHub's names. kiln looks
//! the user up (`GET /users?username=`), then the effective membership
//! (`GET /projects/:id/members/all/:user_id`, inherited from groups too):
//! Owner (50) → admin; Maintainer (40) and Developer (30) → write (both may
//! push); Reporter (20), Planner (15), Guest (10) → read; anything lower,
//! an unknown user or a non-member → none.
//!
//! Commit statuses (`POST /projects/:id/statuses/:sha`, `name` = context):
//! pending → `pending`, success → `success`, failure and error → `failed`
//! (GitLab has no `error`; a cancelled kiln run must still block a merge).
//! GitLab refuses to "transition" a status to the state it already has
//! (HTTP 400 `Cannot transition status`); that answer counts as done.

use super::http::{Http, encode, one_line};
use kiln_forge::api::{
    ApiError, ApiResult, CommentInfo, CommitStatus, ForgeApi, Permission, PullRequestInfo,
    StatusState,
};
use reqwest::Method;
use serde::Deserialize;

/// A GitLab API with one token.
#[derive(Debug)]
pub struct Gitlab {
    http: Http,
}

pub fn gitlab(client: reqwest::Client, api_url: &str, token: &str) -> ApiResult<Gitlab> {
    Ok(Gitlab {
        http: Http::new(
            client,
            api_url,
            &[
                ("private-token", token.to_owned()),
                ("accept", "application/json".into()),
            ],
        )?,
    })
}

#[derive(Deserialize)]
struct UserRef {
    id: u64,
}

#[derive(Deserialize)]
struct Member {
    access_level: u32,
}

#[derive(Deserialize)]
struct Author {
    username: String,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    sha: String,
    source_branch: String,
    target_branch: String,
    source_project_id: Option<u64>,
    target_project_id: Option<u64>,
    author: Author,
}

#[derive(Deserialize)]
struct Note {
    id: u64,
    body: String,
    author: Author,
    #[serde(default)]
    system: bool,
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

/// GitLab access levels onto kiln's permissions (see the module doc).
pub fn permission_of_level(level: u32) -> Permission {
    match level {
        50.. => Permission::Admin,
        30..=49 => Permission::Write,
        10..=29 => Permission::Read,
        _ => Permission::None,
    }
}

fn state_name(s: StatusState) -> &'static str {
    match s {
        StatusState::Pending => "pending",
        StatusState::Success => "success",
        StatusState::Failure | StatusState::Error => "failed",
    }
}

fn mr_info(m: MergeRequest) -> PullRequestInfo {
    PullRequestInfo {
        number: m.iid,
        head_sha: m.sha,
        head_ref: m.source_branch,
        base_ref: m.target_branch,
        head_repo_is_fork: match (m.source_project_id, m.target_project_id) {
            (Some(s), Some(t)) => s != t,
            _ => true,
        },
        author: m.author.username,
    }
}

impl Gitlab {
    fn project(repo: &str) -> String {
        format!("/projects/{}", encode(repo))
    }
}

#[async_trait::async_trait]
impl ForgeApi for Gitlab {
    fn name(&self) -> &str {
        "gitlab"
    }

    async fn permission(&self, repo: &str, user: &str) -> ApiResult<Permission> {
        let req = self
            .http
            .request(Method::GET, &format!("/users?username={}", encode(user)));
        let users: Vec<UserRef> = self.http.json("user lookup", req).await?;
        let Some(u) = users.first() else {
            return Ok(Permission::None);
        };
        let path = format!("{}/members/all/{}", Self::project(repo), u.id);
        let req = self.http.request(Method::GET, &path);
        match self.http.json::<Member>("membership", req).await {
            Ok(m) => Ok(permission_of_level(m.access_level)),
            Err(ApiError::NotFound(_)) => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }

    async fn set_status(&self, repo: &str, sha: &str, status: &CommitStatus) -> ApiResult<()> {
        let path = format!("{}/statuses/{}", Self::project(repo), encode(sha));
        let mut body = serde_json::json!({
            "state": state_name(status.state),
            "name": status.context,
            "description": one_line(&status.description, 255),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = url.clone().into();
        }
        let req = self.http.request(Method::POST, &path).json(&body);
        match self.http.send("commit status", req).await {
            Ok(_) => Ok(()),
            Err(ApiError::Invalid(m)) if m.contains("Cannot transition status") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_comment(&self, repo: &str, pr: u64, body: &str) -> ApiResult<u64> {
        let path = format!("{}/merge_requests/{pr}/notes", Self::project(repo));
        let req = self
            .http
            .request(Method::POST, &path)
            .json(&serde_json::json!({ "body": body }));
        Ok(self.http.json::<Created>("note", req).await?.id)
    }

    async fn edit_comment(&self, repo: &str, pr: u64, comment: u64, body: &str) -> ApiResult<()> {
        let path = format!(
            "{}/merge_requests/{pr}/notes/{comment}",
            Self::project(repo)
        );
        let req = self
            .http
            .request(Method::PUT, &path)
            .json(&serde_json::json!({ "body": body }));
        self.http.send("note edit", req).await.map(drop)
    }

    async fn open_pull_requests(&self, repo: &str) -> ApiResult<Vec<PullRequestInfo>> {
        let path = format!(
            "{}/merge_requests?state=opened&per_page=100",
            Self::project(repo)
        );
        let mrs: Vec<MergeRequest> = self.http.pages("merge requests", &path).await?;
        Ok(mrs.into_iter().map(mr_info).collect())
    }

    async fn pull_request(&self, repo: &str, number: u64) -> ApiResult<PullRequestInfo> {
        let path = format!("{}/merge_requests/{number}", Self::project(repo));
        let req = self.http.request(Method::GET, &path);
        Ok(mr_info(self.http.json("merge request", req).await?))
    }

    async fn comments_after(&self, repo: &str, pr: u64, after: u64) -> ApiResult<Vec<CommentInfo>> {
        let path = format!(
            "{}/merge_requests/{pr}/notes?sort=asc&order_by=created_at&per_page=100",
            Self::project(repo)
        );
        let notes: Vec<Note> = self.http.pages("notes", &path).await?;
        let mut out: Vec<CommentInfo> = notes
            .into_iter()
            .filter(|n| !n.system && n.id > after)
            .map(|n| CommentInfo {
                id: n.id,
                author: n.author.username,
                body: n.body,
            })
            .collect();
        out.sort_by_key(|c| c.id);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeHttp, Reply};

    const PROJECT: &str = "/api/v4/projects/group%2Fsub%2Fapp";

    #[test]
    fn access_levels() {
        assert_eq!(permission_of_level(50), Permission::Admin);
        assert_eq!(permission_of_level(40), Permission::Write);
        assert_eq!(permission_of_level(30), Permission::Write);
        assert_eq!(permission_of_level(20), Permission::Read);
        assert_eq!(permission_of_level(10), Permission::Read);
        assert_eq!(permission_of_level(5), Permission::None);
        assert_eq!(permission_of_level(0), Permission::None);
    }

    #[tokio::test]
    async fn gitlab_endpoints_headers_and_bodies() {
        let fake = FakeHttp::start(|r| {
            // The path as sent, still encoded (`%2F` in the project id).
            match (r.method.as_str(), r.path.as_str(), r.query.as_str()) {
                ("GET", "/api/v4/users", "username=dev") => Reply::json(200, r#"[{"id":42,"username":"dev"}]"#),
                ("GET", "/api/v4/users", _) => Reply::json(200, "[]"),
                ("GET", x, _) if x == format!("{PROJECT}/members/all/42") => {
                    Reply::json(200, r#"{"id":42,"access_level":30}"#)
                }
                ("POST", x, _) if x == format!("{PROJECT}/statuses/abc") => {
                    if r.body.contains("\"pending\"") {
                        Reply::json(400, r#"{"message":"Cannot transition status via :enqueue from :pending"}"#)
                    } else {
                        Reply::json(201, "{}")
                    }
                }
                ("POST", x, _) if x == format!("{PROJECT}/merge_requests/3/notes") => {
                    Reply::json(201, r#"{"id":700}"#)
                }
                ("PUT", x, _) if x == format!("{PROJECT}/merge_requests/3/notes/700") => {
                    Reply::json(200, r#"{"id":700}"#)
                }
                ("GET", x, _) if x == format!("{PROJECT}/merge_requests") => Reply::json(
                    200,
                    r#"[{"iid":3,"sha":"abc","source_branch":"f","target_branch":"main","source_project_id":9,"target_project_id":1,"author":{"username":"dev"}}]"#,
                ),
                ("GET", x, _) if x == format!("{PROJECT}/merge_requests/3/notes") => Reply::json(
                    200,
                    r#"[{"id":600,"body":"added 1 commit","author":{"username":"dev"},"system":true},{"id":650,"body":"!testme","author":{"username":"dev"},"system":false}]"#,
                ),
                _ => Reply::json(404, r#"{"message":"404 Not found"}"#),
            }
        })
        .await;
        let base = format!("{}/api/v4", fake.url);
        let api = gitlab(super::super::http::client().unwrap(), &base, "glpat").unwrap();
        assert_eq!(
            api.permission("group/sub/app", "dev").await,
            Ok(Permission::Write)
        );
        assert_eq!(
            api.permission("group/sub/app", "ghost").await,
            Ok(Permission::None)
        );
        let status = |state| CommitStatus {
            state,
            context: "kiln/ci".into(),
            description: "cancelled".into(),
            target_url: Some("http://k/api/v1/runs/1".into()),
        };
        api.set_status("group/sub/app", "abc", &status(StatusState::Error))
            .await
            .unwrap();
        // Already pending: GitLab's 400 counts as done.
        api.set_status("group/sub/app", "abc", &status(StatusState::Pending))
            .await
            .unwrap();
        assert_eq!(api.create_comment("group/sub/app", 3, "hi").await, Ok(700));
        api.edit_comment("group/sub/app", 3, 700, "bye")
            .await
            .unwrap();
        let mrs = api.open_pull_requests("group/sub/app").await.unwrap();
        assert_eq!(mrs[0].number, 3);
        assert!(mrs[0].head_repo_is_fork);
        let notes = api.comments_after("group/sub/app", 3, 0).await.unwrap();
        assert_eq!(notes.iter().map(|n| n.id).collect::<Vec<_>>(), [650]);

        let reqs = fake.requests();
        assert!(
            reqs.iter()
                .all(|r| r.header("private-token") == Some("glpat"))
        );
        let st = reqs
            .iter()
            .find(|r| r.method == "POST" && r.path.ends_with("/statuses/abc"))
            .unwrap();
        assert_eq!(
            st.json(),
            serde_json::json!({"state": "failed", "name": "kiln/ci", "description": "cancelled", "target_url": "http://k/api/v1/runs/1"})
        );
        let edit = reqs.iter().find(|r| r.method == "PUT").unwrap();
        assert_eq!(edit.json(), serde_json::json!({"body": "bye"}));
        let list = reqs
            .iter()
            .find(|r| r.path.ends_with("/merge_requests"))
            .unwrap();
        assert_eq!(list.query, "state=opened&per_page=100");
    }
}
