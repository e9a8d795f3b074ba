//! Flags of `kiln up`, `kiln server` and `kiln agent`.

use clap::Args;
use std::path::PathBuf;

/// Container job settings (`kiln up`, `kiln agent`, `kiln exec`).
#[derive(Debug, Clone, Args)]
pub struct ContainerArgs {
    /// CPUs a container job gets per unit of its `weight` (0: no limit)
    #[arg(long, default_value_t = 1.0, value_name = "CPUS")]
    pub cpus_per_weight: f64,
    /// Memory a container job gets per unit of its `weight`, in MiB (0: no limit)
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    pub memory_per_weight: u64,
    /// Let jobs bind-mount the container engine's socket (they then control the engine)
    #[arg(long)]
    pub allow_socket_mount: bool,
    /// When to pull images: if-not-present, always, never
    #[arg(long, default_value = "if-not-present", value_name = "POLICY")]
    pub pull: String,
}

impl ContainerArgs {
    pub fn exec_config(&self) -> Result<kiln_exec::config::ExecConfig, String> {
        use kiln_exec::config::{ContainerConfig, ExecConfig, PullPolicy};
        let pull = match self.pull.as_str() {
            "if-not-present" => PullPolicy::IfNotPresent,
            "always" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            other => {
                return Err(format!(
                    "--pull `{other}`: expected if-not-present, always or never"
                ));
            }
        };
        Ok(ExecConfig {
            container: ContainerConfig {
                cpus_per_weight: (self.cpus_per_weight > 0.0).then_some(self.cpus_per_weight),
                memory_per_weight: (self.memory_per_weight > 0)
                    .then_some(self.memory_per_weight << 20),
                allow_socket_mount: self.allow_socket_mount,
                pull,
                ..ContainerConfig::default()
            },
        })
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Data directory: database, mirrors, tokens (default: $KILN_DATA or the platform data dir)
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7171)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Local agents to start in this process
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub agents: u32,
    /// Capacity of each local agent (default: CPUs divided among the agents)
    #[arg(long, value_name = "N")]
    pub capacity: Option<u32>,
    /// Extra labels for the local agents, comma-separated (they always have self-hosted, the OS and the arch)
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    pub labels: Vec<String>,
    /// Configuration file (TOML; see `kiln server --print-defaults`)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub containers: ContainerArgs,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Configuration file (TOML); keys are documented in `--print-defaults`
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override `listen`
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Override `data_dir`
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print the default configuration (every key, documented) and exit
    #[arg(long)]
    pub print_defaults: bool,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server's URL, like http://ci.example:7171
    #[arg(long, env = "KILN_SERVER", value_name = "URL")]
    pub server: String,
    /// File holding an agent token (`kiln token create --role agent`)
    #[arg(long, env = "KILN_AGENT_TOKEN_FILE", value_name = "FILE")]
    pub token_file: PathBuf,
    /// Labels matched against jobs' runs-on, comma-separated (added to self-hosted, the OS and the arch)
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    pub labels: Vec<String>,
    /// Capacity units (a job takes its `weight`); default: number of CPUs
    #[arg(long, value_name = "N")]
    pub capacity: Option<u32>,
    /// Name shown in `kiln agents` (default: the host name)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Where workspaces and repository mirrors live
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub containers: ContainerArgs,
}
