//! The schema migrations, embedded in the binary.
//!
//! The files in `migrations/sqlite/` are named `<version>_<description>.sql`
//! as `sqlx migrate` expects. They are listed here by hand with
//! `include_str!` rather than through `sqlx::migrate!`, which would pull
//! in sqlx's proc-macro crate (and its own copy of the SQLite driver) at
//! build time; a test checks the list against the folder, so a new file
//! cannot be forgotten. Applied migrations are recorded, with checksums,
//! in sqlx's `_sqlx_migrations` table, so a database written by this code
//! is also readable by the `sqlx` CLI.

use super::backend;
use crate::ports::{Result, StoreError};
use sqlx::SqlitePool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// (version, description, SQL), in version order.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "triggers",
        include_str!("../../migrations/sqlite/0002_triggers.sql"),
    ),
    (
        3,
        "forges",
        include_str!("../../migrations/sqlite/0003_forges.sql"),
    ),
    (
        4,
        "gates",
        include_str!("../../migrations/sqlite/0004_gates.sql"),
    ),
    (
        5,
        "agent_sessions",
        include_str!("../../migrations/sqlite/0005_agent_sessions.sql"),
    ),
    (
        6,
        "claim",
        include_str!("../../migrations/sqlite/0006_claim.sql"),
    ),
    (
        7,
        "retry_priority",
        include_str!("../../migrations/sqlite/0007_retry_priority.sql"),
    ),
    (
        8,
        "poll_schedule",
        include_str!("../../migrations/sqlite/0008_poll_schedule.sql"),
    ),
    (
        9,
        "run_parts",
        include_str!("../../migrations/sqlite/0009_run_parts.sql"),
    ),
];

/// The embedded migrations up to a version (all of them: `i64::MAX`).
#[derive(Debug)]
struct Embedded {
    up_to: i64,
}

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Migration>, BoxDynError>> + Send>>
    {
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .filter(|(version, _, _)| *version <= self.up_to)
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Apply every migration the database has not seen yet. Fails if the
/// database has a migration this binary does not know (it was written by
/// a newer kiln) or one whose text changed.
pub(crate) async fn run(pool: &SqlitePool) -> Result<()> {
    run_up_to(pool, i64::MAX).await
}

async fn run_up_to(pool: &SqlitePool, up_to: i64) -> Result<()> {
    let migrator = Migrator::new(Embedded { up_to })
        .await
        .map_err(|e| StoreError::Backend(format!("loading migrations: {e}")))?;
    migrator
        .run(pool)
        .await
        .map_err(|e| StoreError::Backend(format!("migrating the database: {e}")))?;
    // Make sure the pool is usable after migrating (surfaces a broken
    // connection here rather than at the first call).
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MIGRATIONS, run, run_up_to};
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    /// A run stored whole before migration 9 (its workflow and its whole
    /// graph in its row) is split: the workflow in `run_workflows`, the
    /// graph's nodes in `run_nodes`, its head in the row.
    #[tokio::test]
    async fn runs_from_before_9_are_split_into_parts() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().in_memory(true))
            .await
            .expect("pool");
        run_up_to(&pool, 8).await.expect("migrations 1 to 8");
        sqlx::query(
            "INSERT INTO repos (id, name, url, created_at) VALUES (1, 'r', 'file:///r', 0)",
        )
        .execute(&pool)
        .await
        .expect("repo");
        let graph = r#"{"nodes":[{"needs":[],"state":"Waiting"},{"needs":[0],"state":"Waiting"}],"capacity":9,"used":0,"running":0,"cancelled":false,"finished":false}"#;
        sqlx::query(
            "INSERT INTO runs (id, repo_id, workflow_file, workflow_name, commit_sha, event, \
             workflow, contexts, status, graph, version, created_at) \
             VALUES (7, 1, 'ci.yml', 'ci', 'abc', 'push', '{\"the\":\"workflow\"}', '{}', \
             'running', ?, 3, 0)",
        )
        .bind(graph)
        .execute(&pool)
        .await
        .expect("run");
        run(&pool).await.expect("migration 9");
        let head: String = sqlx::query_scalar("SELECT graph FROM runs WHERE id = 7")
            .fetch_one(&pool)
            .await
            .expect("head");
        let head: serde_json::Value = serde_json::from_str(&head).expect("json");
        assert_eq!(head.get("nodes"), None);
        assert_eq!(head["capacity"], 9);
        let nodes: Vec<(i64, String)> =
            sqlx::query_as("SELECT node, state FROM run_nodes WHERE run_id = 7 ORDER BY node")
                .fetch_all(&pool)
                .await
                .expect("nodes");
        assert_eq!(
            nodes,
            vec![
                (0, r#"{"needs":[],"state":"Waiting"}"#.to_owned()),
                (1, r#"{"needs":[0],"state":"Waiting"}"#.to_owned())
            ]
        );
        let wf: String = sqlx::query_scalar("SELECT workflow FROM run_workflows WHERE run_id = 7")
            .fetch_one(&pool)
            .await
            .expect("workflow");
        assert_eq!(wf, r#"{"the":"workflow"}"#);
    }

    #[test]
    fn every_file_in_the_folder_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations folder")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|(v, d, _)| format!("{v:04}_{d}.sql"))
            .collect();
        assert_eq!(files, embedded);
    }
}
