//! The SQLite adapter: every port over one `sqlx` pool on one database file.
//!
//! Why SQLite: a single server needs no database server to run, and a file
//! is easy to back up. A second server needs the PostgreSQL adapter.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous=FULL`: every commit
//! fsyncs the WAL before `COMMIT` returns, so anything a port method
//! reported as done survives a power cut, not only a crash of the process.
//! (`NORMAL` in WAL mode is crash-safe for the process but may lose the
//! last transactions on power loss; kiln answers agents and webhooks only
//! after a commit, so it must not.) Foreign keys are enforced.
//!
//! # Concurrency
//!
//! One pool of connections. Reads run on any connection, each statement on
//! its own WAL snapshot (or in a plain deferred transaction when a read
//! needs several statements to agree). Every write runs in a transaction
//! opened with `BEGIN IMMEDIATE`, which takes SQLite's single write lock
//! up front: writers queue on the busy timeout instead of failing. A
//! deferred transaction that reads and then writes could fail with
//! `SQLITE_BUSY` at once (another writer committed after its snapshot was
//! taken, and waiting cannot help), so none is used for writes. Since
//! writers are serialized, a conditional `UPDATE ... WHERE status =
//! 'queued'` sees the latest committed state, which is what makes `claim`
//! exclusive, and log chunk ids are assigned in commit order, which is what
//! makes them a safe paging cursor.
//!
//! Dropping a port future mid-call drops its `sqlx::Transaction`, which
//! rolls back before the connection is reused.

mod agents;
mod codec;
mod forges;
mod gates;
mod logs;
mod migrations;
mod queue;
mod repos;
mod runs;
mod triggers;

use crate::ports::{Result, StoreError};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::path::Path;
use std::time::Duration;

/// How long a writer waits for the write lock before giving up with
/// [`StoreError::Backend`]. Write transactions are short (milliseconds), so
/// reaching this means something is badly wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections in the pool of a file database: readers work in parallel,
/// writers queue for the one write lock.
const MAX_CONNECTIONS: u32 = 8;

/// The storage ports over SQLite. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating it if needed) the database at `path` and bring its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Reads through a memory map instead of a pread copy per page
            // (profiled: page-cache copies were a visible share of the
            // server's time). With the map serving reads, each connection's
            // own page cache stays at 2 MiB: at 32 MiB per connection the
            // eight caches grew the server's memory with the queue (79.5
            // MiB with 10,000 queued jobs).
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-2048");
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
        Self::migrated(pool).await
    }

    /// A private in-memory database, for tests. It has a single connection
    /// (each in-memory connection would otherwise be its own database), so
    /// every call is serialized; it is gone when the store is dropped.
    pub async fn open_in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // The database lives as long as its one connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("opening in-memory database: {e}")))?;
        Self::migrated(pool).await
    }

    /// Close every connection, waiting for calls in flight. The store
    /// answers nothing after this.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrated(pool: SqlitePool) -> Result<Self> {
        migrations::run(&pool).await?;
        Ok(Self { pool })
    }

    /// A write transaction holding the database's write lock.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// A read transaction: one snapshot for several statements.
    async fn read(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool.begin().await.map_err(backend)
    }
}

/// Any database error that no port method turns into something more
/// precise.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A unique-constraint violation becomes `Conflict(what)`; anything else
/// is a backend error.
pub(crate) fn conflict_on_unique(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => backend(e),
    }
}

async fn commit(tx: Transaction<'static, Sqlite>) -> Result<()> {
    tx.commit().await.map_err(backend)
}
