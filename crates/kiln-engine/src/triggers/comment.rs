//! Pull request comment commands (`!testme --extra`): which workflows the
//! comment names, whether its author may run them (the allowlist, else the
//! forge's write permission), and the runs they start — a writer's command
//! is the approval a fork's pull request waits for. Replies (an unknown
//! flag, an outsider's refusal) are planned here and posted once the event
//! is claimed.

use super::{
    CommentEvent, Create, Handled, Outcome, PrAction, PullRequestEvent, RunPlan, TriggerError,
    decide,
};
use crate::engine::Engine;
use kiln_forge::command::CommentMatch;
use kiln_model::Value;
use kiln_model::workflow::Workflow;
use kiln_store::types::RepoRecord;

impl Engine {
    pub(super) async fn on_comment(
        &self,
        repo: &RepoRecord,
        c: CommentEvent,
    ) -> Result<Handled, TriggerError> {
        let forge = self.forges.forge(repo.id).await;
        // The pull request's head (and whether it is a fork's) from the
        // forge; without a forge only a report that carries the head works,
        // and its origin is unknown, so it counts as a fork's.
        let (head_sha, info) = match &forge {
            Some(f) => {
                let info = f.api.pull_request(&f.full_name, c.pr).await?;
                (info.head_sha.clone(), Some(info))
            }
            None => match &c.head_sha {
                Some(h) => (h.clone(), None),
                None => {
                    return Ok(Outcome::note(format!(
                        "comment {} on #{}: no forge configured to ask for the pull request's head",
                        c.comment_id, c.pr
                    ))
                    .into());
                }
            },
        };
        let mirror = self
            .mirrors
            .ensure_commit(&repo.name, &repo.url, &head_sha, &Self::pull_refs(c.pr))
            .await?;
        let commit = self.mirrors.commit(&mirror, &head_sha).await?;
        let mut out = Handled::default();
        let mut runs: Vec<(String, Workflow, Value)> = Vec::new();
        let mut command = String::new();
        for (path, text, loaded) in self.workflows_at(&mirror, &commit).await? {
            let Some(wf) = loaded.workflow.as_ref().filter(|_| !loaded.has_errors()) else {
                continue;
            };
            match decide::comment(wf, &text, &c.body) {
                CommentMatch::NoMatch => {}
                CommentMatch::Rejected(e) => {
                    let body = format!("@{} {e}", c.author);
                    if !out.replies.contains(&body) {
                        out.replies.push(body);
                    }
                }
                CommentMatch::Run { flags } => {
                    if let Some(t) = &wf.on.comment {
                        command = t.command.clone();
                    }
                    runs.push((path, wf.clone(), flags));
                }
            }
        }
        if runs.is_empty() {
            return Ok(out);
        }
        let settings = self.store.trigger_settings(repo.id).await?;
        let permission = match (&forge, settings.command_allowlist.is_empty()) {
            (Some(f), true) => Some(f.api.permission(&f.full_name, &c.author).await?),
            (Some(_), false) | (None, _) => None,
        };
        if let decide::Allowed::No(why) =
            decide::may_command(&settings.command_allowlist, &c.author, permission)
        {
            tracing::warn!(repo = %repo.name, pr = c.pr, author = %c.author, command, why, "comment command refused");
            out.notes.push(format!("refused: {why}"));
            if settings.reply_to_outsiders {
                let body = decide::refusal_reply(&c.author, &command, &why);
                out.replies.push(body);
            }
            return Ok(out);
        }
        let p = PullRequestEvent {
            action: PrAction::Other("comment".into()),
            number: c.pr,
            head_sha: commit.clone(),
            head_ref: info
                .as_ref()
                .map(|i| i.head_ref.clone())
                .unwrap_or_default(),
            base_ref: info
                .as_ref()
                .map(|i| i.base_ref.clone())
                .unwrap_or_default(),
            from_fork: info.as_ref().is_none_or(|i| i.head_repo_is_fork),
            author: c.author.clone(),
        };
        let mut github = Self::pull_github(&p, "created");
        if let Some((_, Value::Object(event))) = github.iter_mut().find(|(k, _)| *k == "event") {
            event.insert(
                "comment".into(),
                Value::object([
                    ("id", Value::Number(c.comment_id as f64)),
                    ("body", Value::str(&c.body)),
                    ("user", Value::object([("login", Value::str(&c.author))])),
                ]),
            );
        }
        for (path, wf, flags) in runs {
            // An allowed author's command is the approval: a fork's code
            // runs (without secrets) without waiting.
            let plan = RunPlan {
                repo,
                commit: &commit,
                git_ref: Some(format!("refs/pull/{}/head", c.pr)),
                event: "comment",
                actor: &c.author,
                flags,
                pull_request: Some(c.pr),
                from_fork: p.from_fork,
                github: github.clone(),
            };
            self.create(&plan, &path, &wf, Create::Start, &mut out);
        }
        Ok(out)
    }
}
