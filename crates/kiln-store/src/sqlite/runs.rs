//! [`RunStore`] over SQLite: runs, their transitions, and reading job
//! instances and attempts.

use super::codec::{
    from_json, from_opt_json, from_opt_ts, from_ts, parse_failure, parse_status, status_str,
    to_json, to_u32, ts,
};
use super::{SqliteStore, backend, commit};
use crate::ports::{Result, RunStore, StoreError};
use crate::types::{
    AttemptRecord, EventClaim, InstanceRecord, InstanceState, NewInstance, NewRun, RunRecord,
    Transition,
};
use jiff::Timestamp;
use kiln_model::{AgentId, InstanceId, JobStatus, RepoId, RetryOn, RetryPolicy, RunId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

const SELECT_RUN: &str = "SELECT r.id, r.repo_id, p.name AS repo_name, p.url AS repo_url, \
     r.workflow_file, r.workflow_name, r.commit_sha, r.git_ref, r.event, w.workflow, r.contexts, \
     r.status, r.error, r.graph, r.hold, r.version, r.created_at, r.started_at, r.finished_at \
     FROM runs r JOIN repos p ON p.id = r.repo_id LEFT JOIN run_workflows w ON w.run_id = r.id";

/// [`SELECT_RUN`] without the workflow.
fn select_head() -> String {
    SELECT_RUN
        .replace("w.workflow,", "NULL AS workflow,")
        .replace(" LEFT JOIN run_workflows w ON w.run_id = r.id", "")
}

fn run_record(row: &SqliteRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: RunId(row.try_get("id").map_err(backend)?),
        repo: RepoId(row.try_get("repo_id").map_err(backend)?),
        repo_name: row.try_get("repo_name").map_err(backend)?,
        repo_url: row.try_get("repo_url").map_err(backend)?,
        workflow_file: row.try_get("workflow_file").map_err(backend)?,
        workflow_name: row.try_get("workflow_name").map_err(backend)?,
        commit: row.try_get("commit_sha").map_err(backend)?,
        git_ref: row.try_get("git_ref").map_err(backend)?,
        event: row.try_get("event").map_err(backend)?,
        workflow: from_opt_json("run workflow", row.try_get("workflow").map_err(backend)?)?,
        contexts: from_json("run contexts", row.try_get("contexts").map_err(backend)?)?,
        status: parse_status(row.try_get("status").map_err(backend)?)?,
        error: row.try_get("error").map_err(backend)?,
        graph: row.try_get("graph").map_err(backend)?,
        hold: from_opt_json("run hold", row.try_get("hold").map_err(backend)?)?,
        version: row.try_get("version").map_err(backend)?,
        created_at: from_ts(row.try_get("created_at").map_err(backend)?)?,
        started_at: from_opt_ts(row.try_get("started_at").map_err(backend)?)?,
        finished_at: from_opt_ts(row.try_get("finished_at").map_err(backend)?)?,
    })
}

/// An instance as a run's transition sees it; its outputs from the stored
/// result.
const SELECT_STATE: &str = "SELECT id, node, idx, job_key, status, \
     json_extract(result, '$.outputs') AS outputs FROM instances";

fn instance_state(row: &SqliteRow) -> Result<InstanceState> {
    let outputs: Option<String> = row.try_get("outputs").map_err(backend)?;
    Ok(InstanceState {
        id: InstanceId(row.try_get("id").map_err(backend)?),
        node: to_u32("node", row.try_get("node").map_err(backend)?)?,
        index: to_u32("index", row.try_get("idx").map_err(backend)?)?,
        job_key: row.try_get("job_key").map_err(backend)?,
        status: parse_status(row.try_get("status").map_err(backend)?)?,
        outputs: match outputs {
            Some(text) => from_json("instance outputs", &text)?,
            None => Default::default(),
        },
    })
}

pub(super) const SELECT_INSTANCE: &str = "SELECT i.id, i.run_id, r.repo_id, i.node, i.idx, \
     i.job_key, i.name, i.matrix, i.runs_on, i.weight, i.status, i.attempt, i.max_attempts, \
     i.retry_on, i.priority, i.agent_id, a.name AS agent_name, i.lease_expires_at, i.cancel_requested, i.reason, \
     i.hold, i.contexts, i.result, i.graph_applied, i.queued_at, i.started_at, i.finished_at \
     FROM instances i JOIN runs r ON r.id = i.run_id LEFT JOIN agents a ON a.id = i.agent_id";

pub(super) fn instance_record(row: &SqliteRow) -> Result<InstanceRecord> {
    Ok(InstanceRecord {
        id: InstanceId(row.try_get("id").map_err(backend)?),
        run: RunId(row.try_get("run_id").map_err(backend)?),
        repo: RepoId(row.try_get("repo_id").map_err(backend)?),
        node: to_u32("node", row.try_get("node").map_err(backend)?)?,
        index: to_u32("index", row.try_get("idx").map_err(backend)?)?,
        job_key: row.try_get("job_key").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        matrix: from_opt_json("instance matrix", row.try_get("matrix").map_err(backend)?)?,
        runs_on: from_json("instance runs_on", row.try_get("runs_on").map_err(backend)?)?,
        weight: to_u32("weight", row.try_get("weight").map_err(backend)?)?,
        status: parse_status(row.try_get("status").map_err(backend)?)?,
        priority: row.try_get("priority").map_err(backend)?,
        attempt: to_u32("attempt", row.try_get("attempt").map_err(backend)?)?,
        retry: retry_policy(
            row.try_get("max_attempts").map_err(backend)?,
            row.try_get("retry_on").map_err(backend)?,
        )?,
        agent: row
            .try_get::<Option<i64>, _>("agent_id")
            .map_err(backend)?
            .map(AgentId),
        agent_name: row.try_get("agent_name").map_err(backend)?,
        lease_expires_at: from_opt_ts(row.try_get("lease_expires_at").map_err(backend)?)?,
        cancel_requested: row.try_get("cancel_requested").map_err(backend)?,
        reason: row.try_get("reason").map_err(backend)?,
        hold: from_opt_json("instance hold", row.try_get("hold").map_err(backend)?)?,
        contexts: from_json(
            "instance contexts",
            row.try_get("contexts").map_err(backend)?,
        )?,
        result: from_opt_json("instance result", row.try_get("result").map_err(backend)?)?,
        graph_applied: row.try_get("graph_applied").map_err(backend)?,
        queued_at: from_ts(row.try_get("queued_at").map_err(backend)?)?,
        started_at: from_opt_ts(row.try_get("started_at").map_err(backend)?)?,
        finished_at: from_opt_ts(row.try_get("finished_at").map_err(backend)?)?,
    })
}

/// One instance, read on `conn` (inside the caller's transaction).
pub(super) async fn instance_on(
    conn: &mut SqliteConnection,
    id: InstanceId,
) -> Result<InstanceRecord> {
    let row = sqlx::query(&format!("{SELECT_INSTANCE} WHERE i.id = ?"))
        .bind(id.0)
        .fetch_optional(conn)
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
    instance_record(&row)
}

/// An instance's retry policy from its columns: `max_attempts` and the
/// classes (NULL before migration 0007: agent loss only).
pub(super) fn retry_policy(max_attempts: i64, retry_on: Option<String>) -> Result<RetryPolicy> {
    let max = to_u32("max_attempts", max_attempts)?.saturating_sub(1);
    let on = match retry_on {
        Some(json) => from_json("instance retry_on", &json)?,
        None => vec![RetryOn::AgentLost],
    };
    Ok(RetryPolicy { max, on })
}

fn attempt_record(row: &SqliteRow) -> Result<AttemptRecord> {
    Ok(AttemptRecord {
        instance: InstanceId(row.try_get("instance_id").map_err(backend)?),
        attempt: to_u32("attempt", row.try_get("attempt").map_err(backend)?)?,
        agent_name: row.try_get("agent_name").map_err(backend)?,
        status: parse_status(row.try_get("status").map_err(backend)?)?,
        reason: row.try_get("reason").map_err(backend)?,
        failure: parse_failure(row.try_get::<Option<&str>, _>("failure").map_err(backend)?)?,
        started_at: from_ts(row.try_get("started_at").map_err(backend)?)?,
        finished_at: from_opt_ts(row.try_get("finished_at").map_err(backend)?)?,
        result: from_opt_json("attempt result", row.try_get("result").map_err(backend)?)?,
    })
}

async fn run_exists(conn: &mut SqliteConnection, id: RunId) -> Result<bool> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT 1 FROM runs WHERE id = ?")
            .bind(id.0)
            .fetch_optional(conn)
            .await
            .map_err(backend)?
            .is_some(),
    )
}

/// Insert a run inside the caller's write transaction and read it back.
/// `NotFound` when its repository does not exist.
pub(super) async fn insert_run(
    tx: &mut Transaction<'static, Sqlite>,
    run: &NewRun,
) -> Result<RunRecord> {
    let repo_exists = sqlx::query_scalar::<_, i64>("SELECT 1 FROM repos WHERE id = ?")
        .bind(run.repo.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?
        .is_some();
    if !repo_exists {
        return Err(StoreError::NotFound(format!("repository {}", run.repo)));
    }
    // A run created terminal (an invalid workflow, a path-filtered skip) is
    // finished at once.
    let finished_at = run.status.is_terminal().then(|| ts(run.now));
    let workflow = run.workflow.as_ref().map(to_json).transpose()?;
    let hold = match (&run.hold, run.status.is_terminal()) {
        (Some(h), false) => Some(to_json(h)?),
        _ => None,
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO runs (repo_id, workflow_file, workflow_name, commit_sha, git_ref, event, \
         contexts, status, error, graph, hold, version, created_at, finished_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) RETURNING id",
    )
    .bind(run.repo.0)
    .bind(&run.workflow_file)
    .bind(&run.workflow_name)
    .bind(&run.commit)
    .bind(&run.git_ref)
    .bind(&run.event)
    .bind(to_json(&run.contexts)?)
    .bind(status_str(run.status))
    .bind(&run.error)
    .bind(run.graph.as_ref().map(|g| &g.head))
    .bind(hold)
    .bind(ts(run.now))
    .bind(finished_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    if let Some(workflow) = workflow {
        sqlx::query("INSERT INTO run_workflows (run_id, workflow) VALUES (?, ?)")
            .bind(id)
            .bind(workflow)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    if let Some(graph) = &run.graph {
        for (node, state) in graph.nodes.iter().enumerate() {
            write_node(tx, RunId(id), node as i64, state).await?;
        }
    }
    if let (Some(gate), false) = (&run.gate, run.status.is_terminal()) {
        super::gates::insert_entry(tx, run.repo, RunId(id), None, gate, run.now).await?;
    }
    let row = sqlx::query(&format!("{SELECT_RUN} WHERE r.id = ?"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    run_record(&row)
}

/// Write (or rewrite) one node of a run's graph.
async fn write_node(conn: &mut SqliteConnection, run: RunId, node: i64, state: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO run_nodes (run_id, node, state) VALUES (?, ?, ?) \
         ON CONFLICT (run_id, node) DO UPDATE SET state = excluded.state",
    )
    .bind(run.0)
    .bind(node)
    .bind(state)
    .execute(conn)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn insert_instance(
    tx: &mut Transaction<'static, Sqlite>,
    run: RunId,
    repo: RepoId,
    new: &NewInstance,
    now: Timestamp,
) -> Result<()> {
    // Queued instances enter the queue; terminal ones are done at once and
    // count as already fed to the graph (the graph decided them). Either
    // way `graph_applied` starts true: it is false only while a terminal
    // status waits to be fed back.
    let finished_at = match new.status {
        JobStatus::Queued => None,
        JobStatus::Skipped | JobStatus::Failure | JobStatus::Cancelled | JobStatus::Success => {
            Some(ts(now))
        }
        JobStatus::Running => {
            return Err(StoreError::Conflict(format!(
                "new job `{}` cannot start as running: only a claim starts a job",
                new.name
            )));
        }
    };
    let matrix = new.matrix.as_ref().map(to_json).transpose()?;
    let hold = match (&new.gate, new.status) {
        (Some((_, waiting)), JobStatus::Queued) => Some(to_json(waiting)?),
        _ => None,
    };
    let label_set = super::queue::label_set(tx, &new.runs_on).await?;
    let row = sqlx::query(
        "INSERT INTO instances (run_id, node, idx, job_key, name, matrix, runs_on, weight, status, \
         max_attempts, retry_on, reason, hold, contexts, graph_applied, queue_seq, queued_at, \
         finished_at, label_set, priority, repo_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
         (SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM instances), ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(run.0)
    .bind(i64::from(new.node))
    .bind(i64::from(new.index))
    .bind(&new.job_key)
    .bind(&new.name)
    .bind(matrix)
    .bind(to_json(&new.runs_on)?)
    .bind(i64::from(new.weight))
    .bind(status_str(new.status))
    .bind(i64::from(new.retry.max_attempts()))
    .bind(to_json(&new.retry.on)?)
    .bind(&new.reason)
    .bind(hold)
    .bind(to_json(&new.contexts)?)
    .bind(true)
    .bind(ts(now))
    .bind(finished_at)
    .bind(label_set)
    .bind(new.priority)
    .bind(repo.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    if let (Some((gate, _)), JobStatus::Queued) = (&new.gate, new.status) {
        let id: i64 = row.try_get("id").map_err(backend)?;
        super::gates::insert_entry(tx, repo, run, Some(InstanceId(id)), gate, now).await?;
    }
    Ok(())
}

async fn cancel_instance(
    tx: &mut Transaction<'static, Sqlite>,
    run: RunId,
    id: InstanceId,
    now: Timestamp,
) -> Result<()> {
    let status: String =
        sqlx::query_scalar("SELECT status FROM instances WHERE id = ? AND run_id = ?")
            .bind(id.0)
            .bind(run.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("job {id} of run {run}")))?;
    match parse_status(&status)? {
        JobStatus::Queued => {
            sqlx::query(
                "UPDATE instances SET status = 'cancelled', reason = 'cancelled', hold = NULL, \
                 graph_applied = 0, finished_at = ? WHERE id = ?",
            )
            .bind(ts(now))
            .bind(id.0)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        JobStatus::Running => {
            sqlx::query("UPDATE instances SET cancel_requested = 1 WHERE id = ?")
                .bind(id.0)
                .execute(&mut **tx)
                .await
                .map_err(backend)?;
        }
        JobStatus::Success | JobStatus::Failure | JobStatus::Cancelled | JobStatus::Skipped => {}
    }
    Ok(())
}

#[async_trait::async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord> {
        let mut tx = self.write().await?;
        let record = insert_run(&mut tx, &run).await?;
        commit(tx).await?;
        Ok(record)
    }

    async fn create_runs(
        &self,
        claim: Option<EventClaim>,
        runs: Vec<NewRun>,
    ) -> Result<Option<Vec<RunRecord>>> {
        let mut tx = self.write().await?;
        if let Some(c) = &claim
            && !super::triggers::claim_on(&mut tx, c.repo, &c.key, c.now).await?
        {
            return Ok(None);
        }
        let mut records = Vec::with_capacity(runs.len());
        for run in &runs {
            records.push(insert_run(&mut tx, run).await?);
        }
        commit(tx).await?;
        Ok(Some(records))
    }

    async fn run(&self, id: RunId) -> Result<RunRecord> {
        let row = sqlx::query(&format!("{SELECT_RUN} WHERE r.id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
        run_record(&row)
    }

    async fn run_head(&self, id: RunId) -> Result<RunRecord> {
        let row = sqlx::query(&format!("{} WHERE r.id = ?", select_head()))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
        run_record(&row)
    }

    async fn instance_states(&self, run: RunId) -> Result<Vec<InstanceState>> {
        let rows = sqlx::query(&format!(
            "{SELECT_STATE} WHERE run_id = ? ORDER BY node, idx, id"
        ))
        .bind(run.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(instance_state).collect()
    }

    async fn node_instance_states(&self, run: RunId, nodes: &[u32]) -> Result<Vec<InstanceState>> {
        let mut out = Vec::new();
        let mut tx = self.read().await?;
        for &node in nodes {
            let rows = sqlx::query(&format!(
                "{SELECT_STATE} WHERE run_id = ? AND node = ? ORDER BY idx, id"
            ))
            .bind(run.0)
            .bind(i64::from(node))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            for row in &rows {
                out.push(instance_state(row)?);
            }
        }
        Ok(out)
    }

    async fn graph_nodes(&self, run: RunId) -> Result<Vec<(u32, String)>> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT node, state FROM run_nodes WHERE run_id = ? ORDER BY node")
                .bind(run.0)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.into_iter()
            .map(|(node, state)| Ok((to_u32("node", node)?, state)))
            .collect()
    }

    async fn runs(&self, repo: Option<RepoId>, limit: u32) -> Result<Vec<RunRecord>> {
        let rows = match repo {
            Some(repo) => {
                sqlx::query(&format!(
                    "{} WHERE r.repo_id = ? ORDER BY r.id DESC LIMIT ?",
                    select_head()
                ))
                .bind(repo.0)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!("{} ORDER BY r.id DESC LIMIT ?", select_head()))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(backend)?;
        rows.iter().map(run_record).collect()
    }

    async fn active_runs(&self) -> Result<Vec<RunId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE status IN ('queued', 'running') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(ids.into_iter().map(RunId).collect())
    }

    async fn apply(&self, run: RunId, t: Transition) -> Result<i64> {
        let mut tx = self.write().await?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE runs SET graph = ?, status = COALESCE(?, status), \
             started_at = COALESCE(?, started_at), finished_at = COALESCE(?, finished_at), \
             error = COALESCE(error, ?), \
             version = version + 1 WHERE id = ? AND version = ? RETURNING version",
        )
        .bind(&t.graph)
        .bind(t.status.map(status_str))
        .bind(t.started_at.map(ts))
        .bind(t.finished_at.map(ts))
        .bind(&t.error)
        .bind(run.0)
        .bind(t.expected_version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(version) = version else {
            let current: Option<i64> = sqlx::query_scalar("SELECT version FROM runs WHERE id = ?")
                .bind(run.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            return Err(match current {
                None => StoreError::NotFound(format!("run {run}")),
                Some(v) => StoreError::Conflict(format!(
                    "run {run} is at version {v}, not {}",
                    t.expected_version
                )),
            });
        };
        for (node, state) in &t.graph_nodes {
            write_node(&mut tx, run, i64::from(*node), state).await?;
        }
        if !t.new_instances.is_empty() {
            let repo: i64 = sqlx::query_scalar("SELECT repo_id FROM runs WHERE id = ?")
                .bind(run.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            for new in &t.new_instances {
                insert_instance(&mut tx, run, RepoId(repo), new, t.now).await?;
            }
        }
        for &id in &t.cancel {
            cancel_instance(&mut tx, run, id, t.now).await?;
        }
        for &id in &t.applied {
            let done =
                sqlx::query("UPDATE instances SET graph_applied = 1 WHERE id = ? AND run_id = ?")
                    .bind(id.0)
                    .bind(run.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("job {id} of run {run}")));
            }
        }
        commit(tx).await?;
        Ok(version)
    }

    async fn instances(&self, run: RunId) -> Result<Vec<InstanceRecord>> {
        let mut tx = self.read().await?;
        if !run_exists(&mut tx, run).await? {
            return Err(StoreError::NotFound(format!("run {run}")));
        }
        let rows = sqlx::query(&format!(
            "{SELECT_INSTANCE} WHERE i.run_id = ? ORDER BY i.node, i.idx, i.id"
        ))
        .bind(run.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        rows.iter().map(instance_record).collect()
    }

    async fn instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        instance_on(&mut conn, id).await
    }

    async fn attempts(&self, run: RunId) -> Result<Vec<AttemptRecord>> {
        let mut tx = self.read().await?;
        if !run_exists(&mut tx, run).await? {
            return Err(StoreError::NotFound(format!("run {run}")));
        }
        let rows = sqlx::query(
            "SELECT t.instance_id, t.attempt, t.agent_name, t.status, t.reason, t.failure, \
             t.started_at, t.finished_at, t.result FROM attempts t JOIN instances i ON i.id = t.instance_id \
             WHERE i.run_id = ? ORDER BY t.instance_id, t.attempt",
        )
        .bind(run.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        rows.iter().map(attempt_record).collect()
    }

    async fn unapplied(&self) -> Result<Vec<(RunId, InstanceId)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT run_id, id FROM instances WHERE graph_applied = 0 \
             AND status IN ('success', 'failure', 'cancelled', 'skipped') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(run, id)| (RunId(run), InstanceId(id)))
            .collect())
    }
}
