//! What an operator configures about executors: the container executor's
//! per-job limits, its image pull policy and whether jobs may mount the
//! engine's socket.
//!
//! Plain data with defaults ([`ExecConfig::default`]); the agent and
//! `kiln exec` build it (from their own configuration files) and hand it to
//! [`Executors`](crate::select::Executors).

use std::time::Duration;

/// Configuration of every executor kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecConfig {
    pub container: ContainerConfig,
}

/// When to pull a job's image (and its services' images).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only when the engine does not have the image.
    #[default]
    IfNotPresent,
    /// Pull before every job (a registry's newer image wins).
    Always,
    /// Never pull: a missing image fails the job.
    Never,
}

/// A pull policy kiln does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pull policy `{0}`: expected if-not-present, always or never")]
pub struct UnknownPullPolicy(pub String);

impl PullPolicy {
    pub fn parse(text: &str) -> Result<Self, UnknownPullPolicy> {
        match text {
            "if-not-present" => Ok(PullPolicy::IfNotPresent),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(UnknownPullPolicy(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "if-not-present",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        }
    }
}

/// The container executor's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerConfig {
    /// CPUs a job gets per unit of its `weight:` (a weight-2 job gets twice
    /// as many), capped at the engine's CPU count. `None`: no CPU limit.
    pub cpus_per_weight: Option<f64>,
    /// Memory a job gets per unit of its `weight:`, in bytes. `None`: no
    /// memory limit.
    pub memory_per_weight: Option<u64>,
    /// Whether jobs may bind-mount the engine's socket (or a directory
    /// holding it). Off by default: a job with the socket controls the
    /// engine, hence the machine.
    pub allow_socket_mount: bool,
    /// The pull policy of jobs that do not choose one.
    pub pull: PullPolicy,
    /// How long a service's health check may take to pass before the job
    /// fails.
    pub service_ready_limit: Duration,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            cpus_per_weight: Some(1.0),
            memory_per_weight: Some(2 << 30),
            allow_socket_mount: false,
            pull: PullPolicy::IfNotPresent,
            service_ready_limit: Duration::from_secs(120),
        }
    }
}

impl ContainerConfig {
    /// The CPU limit of a job of `weight`, in nano-CPUs (the Engine API's
    /// unit), capped at `engine_cpus`.
    pub fn nano_cpus(&self, weight: u32, engine_cpus: Option<u32>) -> Option<i64> {
        let per = self.cpus_per_weight?;
        let mut cpus = per * f64::from(weight.max(1));
        if let Some(max) = engine_cpus.filter(|n| *n > 0) {
            cpus = cpus.min(f64::from(max));
        }
        (cpus > 0.0).then_some((cpus * 1e9) as i64)
    }

    /// The memory limit of a job of `weight`, in bytes.
    pub fn memory(&self, weight: u32) -> Option<i64> {
        let per = self.memory_per_weight?;
        i64::try_from(per.saturating_mul(u64::from(weight.max(1)))).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_scale_with_weight_and_cap_at_the_engine() {
        let c = ContainerConfig::default();
        assert_eq!(c.nano_cpus(1, Some(8)), Some(1_000_000_000));
        assert_eq!(c.nano_cpus(3, Some(8)), Some(3_000_000_000));
        assert_eq!(c.nano_cpus(4, Some(2)), Some(2_000_000_000));
        assert_eq!(c.memory(2), Some(4 << 30));
        let none = ContainerConfig {
            cpus_per_weight: None,
            memory_per_weight: None,
            ..c
        };
        assert_eq!(none.nano_cpus(2, None), None);
        assert_eq!(none.memory(2), None);
    }

    #[test]
    fn pull_policies_round_trip() {
        for p in [
            PullPolicy::IfNotPresent,
            PullPolicy::Always,
            PullPolicy::Never,
        ] {
            assert_eq!(PullPolicy::parse(p.as_str()), Ok(p));
        }
        assert!(PullPolicy::parse("sometimes").is_err());
    }
}
