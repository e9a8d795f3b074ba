//! `kiln agents` and `kiln queue`: who can run jobs, and what waits.

use crate::client::args::ListArgs;
use crate::client::error::Error;
use crate::client::table::{Align, Cell, Style, Table, ago};
use crate::client::{Ctx, print, print_json};
use crate::exit;
use jiff::Timestamp;
use kiln_client::api::call;
use kiln_proto::api::{AgentInfo, QueuedJob};

pub async fn agents(ctx: &Ctx, args: &ListArgs) -> Result<i32, Error> {
    let raw = ctx.client.call_raw(&call::agents()).await?;
    if args.json {
        print_json(&raw.json)?;
    } else if raw.value.is_empty() {
        print("no agents yet: start one with `kiln agent`\n")?;
    } else {
        print(&agent_table(&raw.value, ctx.style, ctx.now))?;
    }
    Ok(exit::SUCCESS)
}

pub async fn queue(ctx: &Ctx, args: &ListArgs) -> Result<i32, Error> {
    let raw = ctx.client.call_raw(&call::queue()).await?;
    if args.json {
        print_json(&raw.json)?;
    } else if raw.value.is_empty() {
        print("the queue is empty\n")?;
    } else {
        print(&queue_table(&raw.value, ctx.now))?;
    }
    Ok(exit::SUCCESS)
}

fn agent_table(agents: &[AgentInfo], style: Style, now: Timestamp) -> String {
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("STATUS", Align::Left),
        ("USED", Align::Right),
        ("LABELS", Align::Left),
        ("RUNNING", Align::Left),
        ("LAST SEEN", Align::Left),
    ]);
    for a in agents {
        // `lost`: the server saw its lease run out while it was silent
        // (its jobs went back to the queue); `offline`: silent for longer
        // than a claim and a lease.
        let status = match (a.online, a.lost_at) {
            (true, _) => Cell::styled("online", style.paint("32", "online")),
            (false, Some(_)) => Cell::styled("lost", style.paint("31", "lost")),
            (false, None) => Cell::styled("offline", style.dim("offline")),
        };
        let running: Vec<String> = a.running.iter().map(|j| j.to_string()).collect();
        t.row(vec![
            a.name.as_str().into(),
            status,
            format!("{}/{}", a.used, a.capacity).into(),
            a.labels.join(",").into(),
            running.join(",").into(),
            ago(now, a.last_seen).into(),
        ]);
    }
    t.render()
}

fn queue_table(jobs: &[QueuedJob], now: Timestamp) -> String {
    let mut t = Table::new(&[
        ("JOB", Align::Right),
        ("RUN", Align::Right),
        ("REPO", Align::Left),
        ("NAME", Align::Left),
        ("RUNS ON", Align::Left),
        ("WEIGHT", Align::Right),
        ("PRIORITY", Align::Right),
        ("QUEUED", Align::Left),
        ("WAITING FOR", Align::Left),
    ]);
    for j in jobs {
        t.row(vec![
            j.id.to_string().into(),
            j.run.to_string().into(),
            j.repo.as_str().into(),
            j.name.as_str().into(),
            j.runs_on.join(",").into(),
            j.weight.to_string().into(),
            j.priority.to_string().into(),
            ago(now, j.queued_at).into(),
            j.waiting_reason
                .as_ref()
                .map(|w| w.message.as_str())
                .unwrap_or("")
                .into(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::{AgentId, InstanceId, RunId};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("ts")
    }

    #[test]
    fn agents_table() {
        let agents = vec![
            AgentInfo {
                id: AgentId(1),
                name: "build-01".into(),
                labels: vec!["linux".into(), "x64".into()],
                capacity: 4,
                used: 2,
                online: true,
                last_seen: ts("2025-03-01T11:59:58Z"),
                lost_at: None,
                running: vec![InstanceId(17), InstanceId(18)],
            },
            AgentInfo {
                id: AgentId(3),
                name: "gpu-box".into(),
                labels: vec!["gpu".into()],
                capacity: 1,
                used: 0,
                online: false,
                last_seen: ts("2025-03-01T11:59:00Z"),
                lost_at: Some(ts("2025-03-01T11:59:30Z")),
                running: vec![],
            },
            AgentInfo {
                id: AgentId(2),
                name: "mac".into(),
                labels: vec![],
                capacity: 1,
                used: 0,
                online: false,
                last_seen: ts("2025-03-01T10:00:00Z"),
                lost_at: None,
                running: vec![],
            },
        ];
        assert_eq!(
            agent_table(&agents, Style { color: false }, ts("2025-03-01T12:00:00Z")),
            "NAME      STATUS   USED  LABELS     RUNNING  LAST SEEN\n\
             build-01  online    2/4  linux,x64  17,18    2s ago\n\
             gpu-box   lost      0/1  gpu                 1m ago\n\
             mac       offline   0/1                      2h ago\n"
        );
    }

    #[test]
    fn queue_table_shows_waiting_time() {
        let jobs = vec![QueuedJob {
            id: InstanceId(31),
            run: RunId(9),
            repo: "web".into(),
            name: "test (linux)".into(),
            runs_on: vec!["linux".into()],
            weight: 2,
            priority: -5,
            attempt: 0,
            queued_at: ts("2025-03-01T11:55:00Z"),
            waiting_reason: Some(kiln_proto::api::WaitingReason {
                kind: kiln_proto::api::WaitingKind::AgentsBusy,
                message: "all matching agent busy (`box`, capacity 2/2)".into(),
            }),
        }];
        assert_eq!(
            queue_table(&jobs, ts("2025-03-01T12:00:00Z")),
            "JOB  RUN  REPO  NAME          RUNS ON  WEIGHT  PRIORITY  QUEUED  WAITING FOR\n\
             \x2031    9  web   test (linux)  linux         2        -5  5m ago  all matching agent busy (`box`, capacity 2/2)\n"
        );
    }
}
