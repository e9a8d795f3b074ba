//! Conversions between Rust values and column values: timestamps as
//! integer microseconds, statuses as their lowercase names, JSON text, and
//! deflated log chunks. A value that does not decode is a
//! [`StoreError::Backend`]: the database holds something this code never
//! wrote.

use crate::ports::{Result, StoreError};
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use jiff::Timestamp;
use kiln_model::{FailureClass, JobStatus};
use kiln_proto::api::{LogEntry, Role};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{Read, Write};

/// Microseconds since the Unix epoch: PostgreSQL's `timestamptz`
/// precision, so both adapters return the same values.
pub(crate) fn ts(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn from_ts(us: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| corrupt(format!("timestamp {us}: {e}")))
}

pub(crate) fn from_opt_ts(us: Option<i64>) -> Result<Option<Timestamp>> {
    us.map(from_ts).transpose()
}

pub(crate) fn status_str(s: JobStatus) -> &'static str {
    s.as_str()
}

pub(crate) fn parse_status(s: &str) -> Result<JobStatus> {
    match s {
        "queued" => Ok(JobStatus::Queued),
        "running" => Ok(JobStatus::Running),
        "success" => Ok(JobStatus::Success),
        "failure" => Ok(JobStatus::Failure),
        "cancelled" => Ok(JobStatus::Cancelled),
        "skipped" => Ok(JobStatus::Skipped),
        other => Err(corrupt(format!("unknown job status `{other}`"))),
    }
}

/// An attempt's failure class column (NULL: none).
pub(crate) fn parse_failure(s: Option<&str>) -> Result<Option<FailureClass>> {
    s.map(|name| {
        FailureClass::parse(name).ok_or_else(|| corrupt(format!("unknown failure class `{name}`")))
    })
    .transpose()
}

pub(crate) fn parse_role(s: &str) -> Result<Role> {
    s.parse().map_err(corrupt)
}

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(format!("{what}: {e}")))
}

pub(crate) fn from_opt_json<T: DeserializeOwned>(
    what: &str,
    s: Option<String>,
) -> Result<Option<T>> {
    s.map(|s| from_json(what, &s)).transpose()
}

/// A `u32` column (weights, attempts, capacities).
pub(crate) fn to_u32(what: &str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(format!("{what} out of range: {v}")))
}

/// A log chunk as stored: its entries as JSON, zlib-deflated (the zlib
/// wrapper adds a checksum, so a damaged chunk is noticed).
pub(crate) fn pack_logs(lines: &[LogEntry]) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(lines)
        .map_err(|e| StoreError::Backend(format!("encoding log lines: {e}")))?;
    let mut enc = ZlibEncoder::new(Vec::with_capacity(json.len() / 4 + 16), Compression::fast());
    enc.write_all(&json)
        .and_then(|()| enc.finish())
        .map_err(|e| StoreError::Backend(format!("compressing log lines: {e}")))
}

pub(crate) fn unpack_logs(data: &[u8]) -> Result<Vec<LogEntry>> {
    let mut json = Vec::with_capacity(data.len() * 4);
    ZlibDecoder::new(data)
        .read_to_end(&mut json)
        .map_err(|e| corrupt(format!("decompressing a log chunk: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(format!("a log chunk: {e}")))
}

fn corrupt(msg: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("unreadable stored value: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::InstanceId;
    use kiln_proto::api::LogStream;

    #[test]
    fn timestamps_keep_microseconds_and_order() {
        let a = Timestamp::from_microsecond(1_700_000_000_123_456).unwrap();
        assert_eq!(from_ts(ts(a)).unwrap(), a);
        let b = Timestamp::from_microsecond(-5).unwrap();
        assert!(ts(b) < ts(a));
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Success,
            JobStatus::Failure,
            JobStatus::Cancelled,
            JobStatus::Skipped,
        ] {
            assert_eq!(parse_status(status_str(s)).unwrap(), s);
        }
        assert!(parse_status("Running").is_err());
    }

    #[test]
    fn log_chunks_round_trip_and_shrink() {
        let line = LogEntry {
            job: InstanceId(3),
            attempt: 1,
            step: 2,
            stream: LogStream::Stdout,
            at: Timestamp::from_second(1_700_000_000).unwrap(),
            text: "compiling kiln ✓ ".repeat(50),
        };
        let lines = vec![line; 20];
        let packed = pack_logs(&lines).unwrap();
        assert!(packed.len() < serde_json::to_vec(&lines).unwrap().len() / 5);
        assert_eq!(unpack_logs(&packed).unwrap(), lines);
        assert!(unpack_logs(&packed[..packed.len() - 1]).is_err());
    }
}
