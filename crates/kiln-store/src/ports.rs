//! The storage ports. Each trait is one subject; [`Store`] is all of them.
//!
//! Contract for every method:
//! - it is one transaction: it happens entirely or not at all;
//! - it may be called concurrently from many tasks (and, with a shared
//!   database, from many servers); conditional updates make that safe;
//! - `now` is passed in, never read from the clock; timestamps are kept to
//!   the microsecond (what comes back is truncated to that);
//! - errors: [`StoreError::NotFound`] for an unknown id,
//!   [`StoreError::Conflict`] for a duplicate name or a lost optimistic
//!   race (retry after re-reading), [`StoreError::Invalid`] for a request
//!   that can never succeed (a non-final result), [`StoreError::Stale`]
//!   for a fencing token (attempt) that is no longer current — the
//!   caller's view is out of date and nothing was changed;
//!   [`StoreError::NotOwner`] when the attempt is current but leased to
//!   another agent; [`StoreError::Backend`] for the database itself.
//!
//! Cancellation: dropping a future mid-call rolls its transaction back.

use crate::types::*;
use jiff::Timestamp;
use kiln_core::gate::Approval;
use kiln_model::{AgentId, InstanceId, RepoId, RunId};
use kiln_proto::api::{LogEntry, Role, Waiting};
use kiln_proto::results::JobResult;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("stale attempt: {0}")]
    Stale(String),
    #[error("not the lease holder: {0}")]
    NotOwner(String),
    #[error("storage: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[async_trait::async_trait]
pub trait RepoStore: Send + Sync {
    /// Conflict if the name is taken.
    async fn add_repo(&self, name: &str, url: &str, now: Timestamp) -> Result<RepoRecord>;
    async fn repos(&self) -> Result<Vec<RepoRecord>>;
    async fn repo_by_name(&self, name: &str) -> Result<Option<RepoRecord>>;
}

#[async_trait::async_trait]
pub trait RunStore: Send + Sync {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord>;
    /// Create `runs` in one transaction and, with `claim`, claim its event
    /// key in the same one: `None` when the key was claimed before (by a
    /// webhook, a poll, another server), and then nothing is created. So
    /// an event seen twice at once starts its runs once, and a crash can
    /// never leave an event claimed without its runs (or the reverse).
    /// Runs are returned in the order given. NotFound for an unknown
    /// repository.
    async fn create_runs(
        &self,
        claim: Option<EventClaim>,
        runs: Vec<NewRun>,
    ) -> Result<Option<Vec<RunRecord>>>;
    async fn run(&self, id: RunId) -> Result<RunRecord>;
    /// The run without decoding its workflow (`workflow` is always `None`):
    /// cheap enough for every transition, since a run's workflow never
    /// changes after creation (callers keep it).
    async fn run_head(&self, id: RunId) -> Result<RunRecord>;
    /// [`InstanceState`]s of a run, ordered by (node, index).
    async fn instance_states(&self, run: RunId) -> Result<Vec<InstanceState>>;
    /// Those of the instances of `nodes` only.
    async fn node_instance_states(&self, run: RunId, nodes: &[u32]) -> Result<Vec<InstanceState>>;
    /// The nodes of the run's graph, by number (empty for a run without
    /// a graph); its head is [`RunRecord::graph`].
    async fn graph_nodes(&self, run: RunId) -> Result<Vec<(u32, String)>>;
    /// Newest first; `repo` filters; at most `limit`. Heads, as
    /// [`RunStore::run_head`]: without their workflows.
    async fn runs(&self, repo: Option<RepoId>, limit: u32) -> Result<Vec<RunRecord>>;
    /// Runs not yet finished (for reconciliation at start).
    async fn active_runs(&self) -> Result<Vec<RunId>>;
    /// Apply a transition atomically (see [`Transition`]); returns the new
    /// version. Conflict when the run's version moved on.
    async fn apply(&self, run: RunId, t: Transition) -> Result<i64>;
    /// Instances of a run, ordered by (node, index).
    async fn instances(&self, run: RunId) -> Result<Vec<InstanceRecord>>;
    async fn instance(&self, id: InstanceId) -> Result<InstanceRecord>;
    /// Every attempt of every instance of a run, in (instance, attempt) order.
    async fn attempts(&self, run: RunId) -> Result<Vec<AttemptRecord>>;
    /// Terminal instances whose status the run graph has not seen yet.
    async fn unapplied(&self) -> Result<Vec<(RunId, InstanceId)>>;
}

#[async_trait::async_trait]
pub trait QueueStore: Send + Sync {
    /// Queued instances not asking to be cancelled, oldest first, at most `limit`.
    async fn candidates(&self, limit: u32) -> Result<Vec<Candidate>>;
    /// Every queued instance, held ones included, in claim order (highest
    /// priority first, then oldest), at most `limit`: the queue as people
    /// see it.
    async fn queued_instances(&self, limit: u32) -> Result<Vec<InstanceRecord>>;
    /// Lease the queued instances this agent can take, up to `max` and
    /// its free capacity, in one transaction: each is the next by the
    /// rules of `kiln_core::dispatch` (labels, weight, priority,
    /// round-robin between repositories, FIFO; see [`ClaimAsk`]), leased
    /// exactly as [`QueueStore::claim`] does for one instance, and the
    /// round-robin cursor (kept in the store) moves to its repository.
    /// Empty when nothing queued fits. Held and cancel-requested
    /// instances are never taken. Concurrent calls never take one
    /// instance twice.
    async fn claim_batch(
        &self,
        ask: &ClaimAsk,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<InstanceRecord>>;
    /// [`QueueStore::claim_batch`] of one.
    async fn claim_next(
        &self,
        ask: &ClaimAsk,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<InstanceRecord>> {
        Ok(self
            .claim_batch(ask, 1, now, lease_until)
            .await?
            .into_iter()
            .next())
    }
    /// Lease a queued instance to an agent: only if it is still queued.
    /// Increments the attempt (the new fencing token), records the attempt,
    /// sets status Running and the lease. `None` if someone else got it.
    async fn claim(
        &self,
        id: InstanceId,
        agent: AgentId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<InstanceRecord>>;
    /// Extend the lease; returns whether cancellation was requested.
    /// Stale unless the instance is Running at this attempt; NotOwner when
    /// it is, but leased to another agent.
    async fn heartbeat(
        &self,
        id: InstanceId,
        agent: AgentId,
        attempt: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool>;
    /// Record the attempt's result (and its failure class) on the attempt
    /// row. Then, by `kiln_core::retry::decide` with the instance's retry
    /// policy: a failure it retries puts the instance back in the queue
    /// at its old place (agent and lease cleared; the next claim makes
    /// the next attempt), and `requeued` is true; otherwise the instance
    /// becomes terminal with the result's status, `graph_applied = false`.
    /// A job whose cancellation was requested is never requeued. Stale
    /// unless Running at this attempt; NotOwner when another agent holds
    /// it. Invalid if the result's status is not final.
    async fn complete(
        &self,
        id: InstanceId,
        agent: AgentId,
        attempt: u32,
        result: JobResult,
        now: Timestamp,
    ) -> Result<Completed>;
    /// Several finished attempts of one agent, in one transaction: for
    /// each, its last log chunk (as [`LogStore::append_logs`]) and then its
    /// result (as [`QueueStore::complete`]). One outcome per attempt, in
    /// order; one that fails changes nothing of its own and does not stop
    /// the others. `Err` only when the transaction itself fails.
    async fn complete_many(
        &self,
        agent: AgentId,
        attempts: Vec<FinishedAttempt>,
        now: Timestamp,
    ) -> Result<Vec<Result<Completed>>>;
    /// Running instances whose lease ended before `now`: the attempt ends
    /// as `agent-lost` (failure class `agent-lost`); the instance is
    /// requeued when its retry policy retries agent loss, attempts remain
    /// and it was not cancelled, else it fails (`graph_applied = false`). Its
    /// agent, if not heard from since the lease was last renewed, is
    /// declared lost (`lost_at = now`) in the same transaction.
    /// One whose cancellation was requested ends Cancelled instead. A
    /// requeued instance keeps its place in the FIFO queue.
    async fn expire_leases(&self, now: Timestamp) -> Result<Vec<Expired>>;
    /// Give every running lease until `until` (after a server restart, so
    /// downtime does not count against agents). A lease already ending
    /// later is kept.
    async fn extend_all_leases(&self, until: Timestamp) -> Result<()>;
    /// Capacity in use per agent (sum of weights of Running instances).
    async fn running_by_agent(&self) -> Result<Vec<(AgentId, InstanceId, u32)>>;
}

#[async_trait::async_trait]
pub trait LogStore: Send + Sync {
    /// Store one chunk (compressed by the adapter). Idempotent on
    /// (instance, attempt, seq): a repeat is accepted and ignored. Stale if
    /// `attempt` is not the instance's current attempt; NotOwner if that
    /// attempt was claimed by another agent.
    async fn append_logs(
        &self,
        id: InstanceId,
        agent: AgentId,
        attempt: u32,
        seq: u64,
        lines: &[LogEntry],
    ) -> Result<()>;
    /// Lines of a run (optionally one instance), in (instance, attempt, seq)
    /// order, from chunks stored after `after` (0 for all).
    async fn logs(&self, run: RunId, instance: Option<InstanceId>, after: i64) -> Result<LogPage>;
}

#[async_trait::async_trait]
pub trait AgentStore: Send + Sync {
    /// Register or re-register (same name: same id, labels updated). The
    /// agent's session becomes `session_hash` (the SHA-256 hex of a fresh
    /// secret), replacing any earlier one; the agent is online again.
    async fn register_agent(
        &self,
        name: &str,
        labels: &[String],
        capacity: u32,
        session_hash: &str,
        now: Timestamp,
    ) -> Result<AgentRecord>;
    /// The agent whose current session has this hash.
    async fn agent_by_session(&self, session_hash: &str) -> Result<Option<AgentRecord>>;
    async fn agent(&self, id: AgentId) -> Result<AgentRecord>;
    async fn agents(&self) -> Result<Vec<AgentRecord>>;
    /// The agent was heard from: `last_seen` moves forward (never back)
    /// and it is online again.
    async fn touch_agent(&self, id: AgentId, now: Timestamp) -> Result<()>;
    /// Declare lost every online agent not heard from since `silent_since`
    /// (`lost_at = now`); returns them.
    async fn mark_lost_agents(
        &self,
        silent_since: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<AgentId>>;
}

#[async_trait::async_trait]
pub trait AuthStore: Send + Sync {
    /// Store a token by the SHA-256 hex of its secret.
    async fn add_token(
        &self,
        hash: &str,
        role: Role,
        name: Option<&str>,
        now: Timestamp,
    ) -> Result<TokenRecord>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
    async fn token_count(&self) -> Result<u64>;
}

/// Concurrency groups and environments (see `kiln_core::gate`). Entries
/// are created with their run ([`NewRun::gate`]) or instance
/// ([`NewInstance::gate`]).
#[async_trait::async_trait]
pub trait GateStore: Send + Sync {
    /// Gates with at least one entry not done.
    async fn live_gates(&self) -> Result<Vec<GateKey>>;
    /// The entries of a gate that are not done, oldest first.
    async fn gate_entries(&self, key: &GateKey) -> Result<Vec<GateEntryRecord>>;
    /// Every entry of a run (for display), oldest first.
    async fn run_gate_entries(&self, run: RunId) -> Result<Vec<GateEntryRecord>>;
    /// The last `limit` entries of a gate, newest first (deploy history).
    async fn gate_history(&self, key: &GateKey, limit: u32) -> Result<Vec<GateEntryRecord>>;
    /// Waiting → holding, and the subject's hold is cleared (an instance
    /// enters the queue; a run may start). False when the entry was not
    /// waiting (nothing changes).
    async fn release_entry(&self, id: i64, now: Timestamp) -> Result<bool>;
    /// The entry is done (see [`EndEntry`]). False when it already was.
    async fn end_entry(&self, end: EndEntry) -> Result<bool>;
    /// Record an approval decision for a waiting entry; a granted one's
    /// subject then waits for its gate only (`hold` becomes `then_hold`).
    /// False when the entry is not waiting for approval.
    async fn set_approval(
        &self,
        id: i64,
        approval: Approval,
        approver: &str,
        then_hold: Option<Waiting>,
        now: Timestamp,
    ) -> Result<bool>;
    async fn environment(&self, repo: RepoId, name: &str) -> Result<Option<EnvironmentRecord>>;
    /// Names of the environments a repository deployed to or waits for.
    async fn environment_names(&self, repo: RepoId) -> Result<Vec<String>>;
}

/// What triggers keep: repository trigger settings, the refs polling saw,
/// deduplication of deliveries and events, schedules, pull request polling
/// state, and runs held for approval.
///
/// Deduplication methods are claims: the first caller gets `true` and owns
/// the thing; every later (or concurrent) caller gets `false`. Unknown
/// repositories are `NotFound`.
#[async_trait::async_trait]
pub trait TriggerStore: Send + Sync {
    /// The repository's settings; the defaults when never set.
    async fn trigger_settings(&self, repo: RepoId) -> Result<TriggerSettings>;
    /// Replace the repository's settings.
    async fn set_trigger_settings(&self, repo: RepoId, settings: &TriggerSettings) -> Result<()>;
    /// Take the turn to poll `repo`: when its stored next poll is not after
    /// `now` (or it has none), move it to `next` and answer
    /// [`PollTurn::Mine`]; otherwise change nothing and answer when it is
    /// due. Servers sharing a database poll each repository once per
    /// interval between them.
    async fn claim_poll(&self, repo: RepoId, now: Timestamp, next: Timestamp) -> Result<PollTurn>;
    /// The refs the last poll saw; `None` before the first (the baseline).
    async fn polled_refs(&self, repo: RepoId) -> Result<Option<BTreeMap<String, String>>>;
    /// Replace the refs polling saw.
    async fn set_polled_refs(
        &self,
        repo: RepoId,
        refs: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> Result<()>;
    /// Record a webhook delivery: `true` the first time `(forge, id)` is
    /// seen, `false` for a redelivery.
    async fn record_delivery(&self, forge: &str, id: &str, now: Timestamp) -> Result<bool>;
    /// Claim an event key (`push:refs/heads/main:<sha>`, `pr:7:<sha>`,
    /// `comment:<id>` …): `true` for the first claim, `false` when it was
    /// claimed before (by a webhook, a poll, or another server). An event
    /// that creates runs claims with [`RunStore::create_runs`] instead.
    async fn claim_event(&self, repo: RepoId, key: &str, now: Timestamp) -> Result<bool>;
    /// Whether an event key was claimed (a cheap early look; the claim
    /// itself decides).
    async fn event_claimed(&self, repo: RepoId, key: &str) -> Result<bool>;
    /// A schedule's stored state.
    async fn schedule(
        &self,
        repo: RepoId,
        workflow_file: &str,
        index: u32,
    ) -> Result<Option<ScheduleState>>;
    /// Compare-and-set a schedule's next fire time: only if its stored
    /// next fire is still `expected` (`None`: no row yet). `true` when
    /// this call moved it: the caller owns the fire (if it was due).
    async fn advance_schedule(
        &self,
        repo: RepoId,
        workflow_file: &str,
        index: u32,
        expected: Option<Timestamp>,
        next: &ScheduleState,
    ) -> Result<bool>;
    /// Pull requests as API polling last saw them, by number.
    async fn pull_request_polls(&self, repo: RepoId) -> Result<Vec<PullRequestPoll>>;
    /// Record (insert or replace) what polling saw of one pull request.
    async fn set_pull_request_poll(&self, repo: RepoId, poll: &PullRequestPoll) -> Result<()>;
    /// Create a run that must not start until [`TriggerStore::release_run`]
    /// (one transaction: there is no moment when it exists unheld).
    async fn create_held_run(&self, run: NewRun, reason: &str) -> Result<RunRecord>;
    /// Why a run is held for approval (`runs.hold`, kind `fork-approval`);
    /// `None` when it is not (or waits only for a concurrency group).
    async fn run_hold(&self, run: RunId) -> Result<Option<String>>;
    /// Every held run and its reason, oldest first.
    async fn held_runs(&self) -> Result<Vec<(RunId, String)>>;
    /// Release a held run: `true` when it was held (the caller starts it),
    /// `false` when it was not (nothing changes).
    async fn release_run(&self, run: RunId) -> Result<bool>;
}

/// Forge settings per repository, and the outbox of reports to forges
/// (commit statuses, pull request comments).
///
/// The outbox holds one row per run. [`report_requested`] marks a run as
/// having something new to deliver (and bumps its `seq`); a deliverer
/// reads due rows with [`reports_due`], sends the run's *current* state,
/// then calls [`report_delivered`] with the `seq` it read — which clears
/// `due` only if no newer request came in meanwhile — or
/// [`report_failed`] to back off. Any number of deliverers may run: a
/// report sent twice is harmless (statuses and comment edits are
/// idempotent on the forge), a report never lost.
///
/// [`report_requested`]: ForgeStore::report_requested
/// [`reports_due`]: ForgeStore::reports_due
/// [`report_delivered`]: ForgeStore::report_delivered
/// [`report_failed`]: ForgeStore::report_failed
#[async_trait::async_trait]
pub trait ForgeStore: Send + Sync {
    /// Set (or replace) a repository's forge. NotFound for an unknown repo.
    async fn set_forge(&self, forge: &ForgeRecord) -> Result<()>;
    async fn forge(&self, repo: RepoId) -> Result<Option<ForgeRecord>>;
    /// Every configured forge, by repository.
    async fn forges(&self) -> Result<Vec<ForgeRecord>>;
    /// Remove a repository's forge; false if it had none.
    async fn remove_forge(&self, repo: RepoId) -> Result<bool>;

    /// The run has news for its forge: mark it due now (creating its row).
    async fn report_requested(&self, run: RunId, now: Timestamp) -> Result<()>;
    /// Due rows whose `next_at` is not after `now`, earliest first.
    async fn reports_due(&self, now: Timestamp, limit: u32) -> Result<Vec<ForgeReport>>;
    /// Everything up to request `seq` went out: reset the attempts and the
    /// error, keep `comment_id`; clear `due` unless a newer request came.
    async fn report_delivered(&self, run: RunId, seq: i64, comment_id: Option<u64>) -> Result<()>;
    /// A try failed: count it, keep the error, try again at `next_at`;
    /// `comment_id` (if the comment was made before the failure) is kept.
    async fn report_failed(
        &self,
        run: RunId,
        error: &str,
        next_at: Timestamp,
        comment_id: Option<u64>,
    ) -> Result<()>;
    /// The run's outbox row, if it ever had one.
    async fn report(&self, run: RunId) -> Result<Option<ForgeReport>>;
}

/// Everything the server needs.
pub trait Store:
    RepoStore
    + RunStore
    + QueueStore
    + LogStore
    + AgentStore
    + AuthStore
    + TriggerStore
    + ForgeStore
    + GateStore
{
}
impl<
    T: RepoStore
        + RunStore
        + QueueStore
        + LogStore
        + AgentStore
        + AuthStore
        + TriggerStore
        + ForgeStore
        + GateStore,
> Store for T
{
}
