//! Live log fan-out: what agents upload is stored first, then offered to
//! whoever follows the run (`kiln logs -f`, the web UI) through a bounded
//! broadcast channel per run. Followers that fall behind re-read the store.

use kiln_model::{InstanceId, JobStatus, RunId};
use kiln_proto::api::LogEntry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

#[derive(Clone, Debug)]
pub enum HubMsg {
    Chunk {
        instance: InstanceId,
        attempt: u32,
        seq: u64,
        entries: Arc<Vec<LogEntry>>,
    },
    End(JobStatus),
}

#[derive(Default)]
pub struct LogHub {
    runs: Mutex<HashMap<RunId, broadcast::Sender<HubMsg>>>,
}

impl LogHub {
    pub fn subscribe(&self, run: RunId) -> broadcast::Receiver<HubMsg> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.entry(run)
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
    }

    pub fn publish(&self, run: RunId, msg: HubMsg) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let ended = matches!(msg, HubMsg::End(_));
        if let Some(tx) = runs.get(&run) {
            let _ = tx.send(msg);
        }
        if ended {
            runs.remove(&run);
        }
    }
}
