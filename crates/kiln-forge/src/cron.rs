//! Cron (stub).
