//! Signals: wake-ups between the engine's tasks and, with a shared
//! database, between servers. A signal is only a hint: whoever waits on
//! one re-reads the store, so a lost, late or doubled signal costs at most
//! a wait or a needless read, never a wrong answer. Nothing that a second
//! server needs is carried in a signal.
//!
//! The port: [`Signals::notify`] a [`Topic`]; [`Signals::listen`] to one,
//! *before* reading the store, then [`Listener::changed`] returns once a
//! notify came after the listener was made (or at once if one already
//! did). So "read, then wait" can never miss a change that happened in
//! between. [`InProcess`] serves one process (today's only adapter); a
//! PostgreSQL adapter (`LISTEN`/`NOTIFY`) will serve several servers.
//!
//! Topics: [`Topic::Work`] (something became claimable: long-polling
//! claims look again), [`Topic::Gates`] (a gated run or job moved: the
//! gatekeeper settles), [`Topic::Run`] (a run's logs or status changed:
//! live-log followers read the store again).

use kiln_model::RunId;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Work,
    Gates,
    Run(RunId),
}

/// Waits for the next signal of one topic.
pub struct Listener {
    rx: watch::Receiver<u64>,
}

impl Listener {
    /// Returns once the topic was notified after this listener was made
    /// (then after the previous return). Also returns when the topic is
    /// retired (a run that ended): the store says what happened.
    pub async fn changed(&mut self) {
        // An error means the sender is gone: retired, so re-read now.
        let _ = self.rx.changed().await;
    }
}

/// The signals port. Implementations are cheap to call from any task.
pub trait Signals: Send + Sync {
    /// Wake every listener of `topic`.
    fn notify(&self, topic: Topic);
    /// Listen to `topic` from now on.
    fn listen(&self, topic: Topic) -> Listener;
    /// No more signals will come for `topic` (a run ended): listeners
    /// wake once more and may drop. Listening again starts afresh.
    fn retire(&self, topic: Topic);
}

/// Signals within one process: a `watch` channel of a counter per topic.
#[derive(Default)]
pub struct InProcess {
    topics: Mutex<HashMap<Topic, watch::Sender<u64>>>,
}

impl Signals for InProcess {
    fn notify(&self, topic: Topic) {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = topics.get(&topic) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn listen(&self, topic: Topic) -> Listener {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let tx = topics.entry(topic).or_insert_with(|| watch::channel(0).0);
        Listener { rx: tx.subscribe() }
    }

    fn retire(&self, topic: Topic) {
        // Dropping the sender wakes every receiver with an error.
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_notify_after_listening_is_never_missed() {
        let s = InProcess::default();
        let mut l = s.listen(Topic::Work);
        // Notified before the wait began: the wait returns at once.
        s.notify(Topic::Work);
        tokio::time::timeout(Duration::from_secs(5), l.changed())
            .await
            .expect("the earlier notify counts");
        // Another topic does not wake it; this one does.
        let waiter = tokio::spawn(async move {
            l.changed().await;
        });
        s.notify(Topic::Gates);
        s.notify(Topic::Run(RunId(1)));
        s.notify(Topic::Work);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
    }

    #[tokio::test]
    async fn retiring_a_run_wakes_its_followers_and_frees_it() {
        let s = InProcess::default();
        let mut l = s.listen(Topic::Run(RunId(7)));
        s.retire(Topic::Run(RunId(7)));
        tokio::time::timeout(Duration::from_secs(5), l.changed())
            .await
            .expect("woken by the retirement");
        assert!(s.topics.lock().unwrap().is_empty());
    }
}
