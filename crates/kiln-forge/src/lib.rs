//! The pure half of kiln's forge triggers.
//!
//! A trigger turns something that happened on a forge (a webhook delivery, a
//! comment, a clock reaching a cron slot) into "start this workflow on this
//! commit". The server does the I/O (HTTP, the store, git, the clock); this
//! crate makes the decisions that can be made from bytes and times alone, so
//! they are tested without a network:
//! - [`webhook`]: verify a delivery's signature over the raw body, then parse
//!   GitHub, Gitea, Forgejo and GitLab bodies into one [`webhook::ForgeEvent`];
//! - [`command`]: `!testme --extra`-style comment commands into `kiln.flags`;
//! - [`cron`]: five-field cron schedules, their next fire time in a time zone,
//!   and the one fire that is due after downtime.
//!
//! Branch, tag and path filters (`on.push.branches` …) belong to the workflow
//! language and live in `kiln_pipeline::filters`.
//!
//! - [`api`]: the port to the forge's HTTP API (permissions, commit statuses,
//!   comments, pull requests); the server holds the HTTP adapters.
//!
//! Nothing here reads the clock or does I/O; time comes in as arguments.
//! The design note is `docs/design/forge.md`.

pub mod api;
pub mod command;
pub mod cron;
pub mod webhook;
