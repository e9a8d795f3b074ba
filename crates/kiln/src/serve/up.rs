//! The three long-running commands.

use super::args::{AgentArgs, ServerArgs, UpArgs};
use super::*;
use crate::exit;
use crate::repo::Repo;
use kiln_proto::api::Role;
use kiln_server::config::DEFAULTS;

fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `kiln up`: server, local agents, and this repository registered.
pub fn run_up(args: &UpArgs) -> Result<i32, CliError> {
    init_tracing("warn");
    let flags = RawConfig {
        listen: args.listen.clone(),
        data_dir: args.data.as_ref().map(|d| d.display().to_string()),
        ..RawConfig::default()
    };
    let cfg = load_config(args.config.as_deref(), flags)?;
    let exec = args.containers.exec_config().map_err(CliError::Usage)?;
    let repo = Repo::discover(&std::env::current_dir()?).ok();
    runtime()?.block_on(async move {
        let store = open_store(&cfg.data_dir).await?;
        let admin_new = kiln_server::bootstrap_admin(store.as_ref(), &cfg.data_dir)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let admin_file = cfg.data_dir.join("admin.token");
        let agent_token = kiln_server::ensure_token_file(
            store.as_ref(),
            &cfg.data_dir.join("agent.token"),
            Role::Agent,
            "local agents",
        )
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
        let server = kiln_server::start(&cfg, store.clone())
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let url = format!("http://{}", server.addr);
        write_client_file(&cfg.data_dir, &url, &admin_file)?;

        let mut registered = None;
        if let Some(repo) = &repo {
            let name = sanitize(&repo.name);
            match store
                .repo_by_name(&name)
                .await
                .map_err(|e| CliError::Usage(e.to_string()))?
            {
                Some(r) if r.url != repo.root.display().to_string() => eprintln!(
                    "note: a repository named `{name}` already points at {}; not registering {}",
                    r.url,
                    repo.root.display()
                ),
                Some(_) => registered = Some(name),
                None => {
                    store
                        .add_repo(
                            &name,
                            &repo.root.display().to_string(),
                            jiff::Timestamp::now(),
                        )
                        .await
                        .map_err(|e| CliError::Usage(e.to_string()))?;
                    registered = Some(name);
                }
            }
        }

        let shutdown = CancellationToken::new();
        let n = args.agents;
        let capacity = args.capacity.unwrap_or_else(|| (cpus() / n.max(1)).max(1));
        let mut labels = default_labels();
        labels.extend(args.labels.iter().filter(|l| !l.is_empty()).cloned());
        let mut agents = Vec::new();
        for i in 0..n {
            let name = if n == 1 {
                format!("{}-local", hostname())
            } else {
                format!("{}-local-{}", hostname(), i + 1)
            };
            let cfg_a = agent_config(
                url.clone(),
                agent_token.clone(),
                name.clone(),
                labels.clone(),
                capacity,
                cfg.data_dir.join("agents").join(&name),
                exec.clone(),
            );
            agents.push(tokio::spawn(kiln_agent::run(cfg_a, shutdown.clone())));
        }

        println!("kiln is up at {url}");
        match admin_new {
            Some(p) => println!("admin token (new, keep it safe): {}", p.display()),
            None => println!("admin token: {}", admin_file.display()),
        }
        println!("data: {}", cfg.data_dir.display());
        println!(
            "{n} local agent{} (capacity {capacity} each, labels {})",
            if n == 1 { "" } else { "s" },
            labels.join(",")
        );
        if let Some(name) = &registered {
            println!(
                "repository `{name}` registered; start a run with: kiln trigger {name} --wait"
            );
        } else {
            println!("add a repository with: kiln repo add NAME URL");
        }
        println!("stop with Ctrl-C");

        stop_signal().await;
        eprintln!("stopping: waiting for running jobs to finish (Ctrl-C again to quit now)");
        shutdown.cancel();
        let wait_agents = async {
            for a in agents {
                let _ = a.await;
            }
        };
        tokio::select! {
            _ = wait_agents => {}
            _ = stop_signal() => {}
        }
        server.stop().await;
        Ok(exit::SUCCESS)
    })
}

/// `kiln server --config FILE`.
pub fn run_server(args: &ServerArgs) -> Result<i32, CliError> {
    if args.print_defaults {
        print!("{DEFAULTS}");
        return Ok(exit::SUCCESS);
    }
    init_tracing("info");
    let flags = RawConfig {
        listen: args.listen.clone(),
        data_dir: args.data.as_ref().map(|d| d.display().to_string()),
        ..RawConfig::default()
    };
    let cfg = load_config(args.config.as_deref(), flags)?;
    runtime()?.block_on(async move {
        let store = open_store(&cfg.data_dir).await?;
        let admin_new = kiln_server::bootstrap_admin(store.as_ref(), &cfg.data_dir)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let server = kiln_server::start(&cfg, store)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        println!("kiln server listening on http://{}", server.addr);
        if let Some(p) = admin_new {
            println!("admin token (new, keep it safe): {}", p.display());
        }
        stop_signal().await;
        server.stop().await;
        Ok(exit::SUCCESS)
    })
}

/// `kiln agent --server URL --token-file F`.
pub fn run_agent(args: &AgentArgs) -> Result<i32, CliError> {
    init_tracing("warn");
    let token = std::fs::read_to_string(&args.token_file)
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot read the agent token {}: {e}",
                args.token_file.display()
            ))
        })?
        .trim()
        .to_owned();
    let name = args.name.clone().unwrap_or_else(hostname);
    let mut labels = default_labels();
    labels.extend(args.labels.iter().filter(|l| !l.is_empty()).cloned());
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| platform_data_dir().join("agents").join(&name));
    let cfg = agent_config(
        args.server.trim_end_matches('/').to_owned(),
        token,
        name,
        labels,
        args.capacity.unwrap_or_else(cpus),
        work_dir,
        args.containers.exec_config().map_err(CliError::Usage)?,
    );
    runtime()?.block_on(async move {
        let shutdown = CancellationToken::new();
        until_stopped(shutdown.clone(), kiln_agent::run(cfg, shutdown))
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(exit::SUCCESS)
    })
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() { "repo".into() } else { s }
}

/// Where clients find the server `kiln up` started.
fn write_client_file(data: &Path, url: &str, token_file: &Path) -> Result<(), CliError> {
    let body = serde_json::json!({ "server": url, "token_file": token_file });
    let path = data.join("client.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&body).unwrap_or_default() + "\n",
    )
    .map_err(|e| CliError::Usage(format!("writing {}: {e}", path.display())))
}
