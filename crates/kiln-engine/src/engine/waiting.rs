//! Why queued jobs and held runs wait: the store's view of gates and
//! agents, read here, handed to the pure `kiln_core::waiting::explain`.
//! Shown by `kiln show`, `kiln queue`, `kiln trigger --wait` and the API's
//! job JSON (`waiting_reason`).

use super::Engine;
use super::error::EngineResult;
use jiff::Timestamp;
use kiln_core::dispatch::effective_labels;
use kiln_core::waiting::{AgentLoad, Hold, Kind, Reason, explain};
use kiln_model::{JobStatus, RunId};
use kiln_proto::api::{WaitKind, Waiting, WaitingKind, WaitingReason};
use kiln_store::types::{AgentRecord, EntryState, GateEntryRecord, InstanceRecord, RunRecord};
use std::collections::HashMap;

/// The online agents with the labels they serve and their load, read once
/// for a listing.
pub struct Fleet {
    agents: Vec<(String, Vec<String>, u32, u32)>,
}

impl Engine {
    /// Online: not declared lost, and heard from within a claim wait and a
    /// lease (an idle agent calls at least once per claim wait).
    pub fn is_online(&self, agent: &AgentRecord, now: Timestamp) -> bool {
        let silent = now.duration_since(agent.last_seen).as_secs_f64();
        let limit = self.cfg.lease.as_secs_f64() + self.cfg.max_claim_wait.as_secs_f64();
        agent.lost_at.is_none() && silent <= limit
    }

    pub async fn fleet(&self) -> EngineResult<Fleet> {
        let mut used: HashMap<_, u32> = HashMap::new();
        for (agent, _, weight) in self.store.running_by_agent().await? {
            *used.entry(agent).or_default() += weight;
        }
        let now = Timestamp::now();
        let agents = self
            .store
            .agents()
            .await?
            .into_iter()
            .filter(|a| self.is_online(a, now))
            .map(|a| {
                let labels = effective_labels(&a.labels, &self.cfg.label_aliases);
                let load = used.get(&a.id).copied().unwrap_or(0);
                (a.name, labels, a.capacity, load)
            })
            .collect();
        Ok(Fleet { agents })
    }

    /// Why a queued job waits; `None` for a job that is not queued.
    pub async fn job_waiting(
        &self,
        fleet: &Fleet,
        inst: &InstanceRecord,
    ) -> EngineResult<Option<WaitingReason>> {
        if inst.status != JobStatus::Queued {
            return Ok(None);
        }
        let entries = match &inst.hold {
            Some(_) => self.store.run_gate_entries(inst.run).await?,
            None => Vec::new(),
        };
        let mine = entries.iter().find(|e| e.instance == Some(inst.id));
        let holder = match mine {
            Some(e) => self.gate_holder(e).await?,
            None => None,
        };
        let hold = inst.hold.as_ref().map(|w| hold_of(w, holder));
        let loads: Vec<AgentLoad<'_>> = fleet
            .agents
            .iter()
            .map(|(name, labels, capacity, used)| AgentLoad {
                name,
                labels,
                capacity: *capacity,
                used: *used,
            })
            .collect();
        Ok(Some(wire(explain(
            &inst.runs_on,
            inst.weight,
            hold.as_ref(),
            &loads,
        ))))
    }

    /// Why a run held before it starts waits (its concurrency group, or a
    /// fork's approval); `None` for a run that is not held.
    pub async fn run_waiting(&self, run: &RunRecord) -> EngineResult<Option<WaitingReason>> {
        let Some(w) = run.hold.as_ref().filter(|_| !run.status.is_terminal()) else {
            return Ok(None);
        };
        let entries = self.store.run_gate_entries(run.id).await?;
        let holder = match entries.iter().find(|e| e.instance.is_none()) {
            Some(e) => self.gate_holder(e).await?,
            None => None,
        };
        Ok(Some(wire(explain(&[], 1, Some(&hold_of(w, holder)), &[]))))
    }

    /// The run holding the gate `entry` waits for (not the entry's own).
    async fn gate_holder(&self, entry: &GateEntryRecord) -> EngineResult<Option<RunId>> {
        if entry.state != EntryState::Waiting {
            return Ok(None);
        }
        Ok(self
            .store
            .gate_entries(&entry.key)
            .await?
            .into_iter()
            .find(|e| e.state == EntryState::Holding && e.run != entry.run)
            .map(|e| e.run))
    }
}

fn hold_of(w: &Waiting, holder: Option<RunId>) -> Hold<'_> {
    match w.kind {
        WaitKind::Group => Hold::Group {
            name: &w.name,
            holder,
        },
        WaitKind::Environment => Hold::Environment {
            name: &w.name,
            holder,
        },
        WaitKind::Approval => Hold::Approval {
            environment: Some(&w.name),
        },
        WaitKind::ForkApproval => Hold::ForkApproval { why: &w.name },
    }
}

fn wire(r: Reason) -> WaitingReason {
    WaitingReason {
        kind: match r.kind {
            Kind::NoMatchingAgent => WaitingKind::NoMatchingAgent,
            Kind::AgentsBusy => WaitingKind::AgentsBusy,
            Kind::ConcurrencyGroup => WaitingKind::ConcurrencyGroup,
            Kind::DeployLock => WaitingKind::DeployLock,
            Kind::Approval => WaitingKind::Approval,
            Kind::Ready => WaitingKind::Ready,
        },
        message: r.message,
    }
}
