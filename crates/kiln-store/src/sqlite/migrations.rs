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
];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Migration>, BoxDynError>> + Send>>
    {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
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
    let migrator = Migrator::new(Embedded)
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
    use super::MIGRATIONS;

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
