//! `cargo xtask worker | submit | watch | cancel`: facesync on a NATS JetStream work queue
//! (the `queue` crate), for a fleet of machines sharing the inputs' and outputs' storage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use queue::{
    Auth, CancelToken, ClientCert, Job, JobOptions, JobOutcome, NatsConfig, PathPolicy, PathRoots,
    Queue, Secret, WatchEnd, WorkerConfig,
};

pub(crate) const HELP: &str = "usage:
  cargo xtask worker [--nats URL] [worker options]   run jobs from the queue until Ctrl-C
  cargo xtask submit [--nats URL] --video IN --audio IN --out OUT [job options]
                                                     queue a job; prints its id
  cargo xtask watch  [--nats URL] [--timeout S] JOB  follow a job's progress (console) until it ends
  cargo xtask cancel [--nats URL] JOB                cancel a job (running or waiting)

--nats URL defaults to $FACESYNC_NATS, else nats://127.0.0.1:4222; the server needs JetStream
(`nats-server -js`). Paths are made absolute from the current directory: workers must see
them at the same place (shared storage).

connection options (every command; secrets only from files or the environment, never on the
command line: a URL with a password goes in $FACESYNC_NATS, not --nats):
  --user NAME --password-file F   user and password ($FACESYNC_NATS_USER, $FACESYNC_NATS_PASSWORD[_FILE])
  --token-file F                  token ($FACESYNC_NATS_TOKEN[_FILE])
  --nkey-file F                   NKey seed ($FACESYNC_NATS_NKEY_FILE)
  --creds F                       .creds file ($FACESYNC_NATS_CREDS)
  --tls-ca F                      trust only these CAs ($FACESYNC_NATS_CA); tls:// URLs use TLS
  --tls-cert F --tls-key F        client certificate for mutual TLS ($FACESYNC_NATS_CERT, _KEY)
  --require-tls                   refuse a plain connection ($FACESYNC_NATS_REQUIRE_TLS=1)

worker options:
  --name NAME           name in results and logs (default <host>-<pid>)
  --ack-wait S          seconds before a silent worker's job is redelivered (default 30; set
                        by the first worker on a fresh server)
  --max-attempts N      deliveries per job before it goes to the dead letters (default 3)
  --retry-delay S       seconds before a failed job is delivered again (default 5)
  --max-jobs N          stop after N jobs
  --input-root DIR      jobs' inputs must lie under DIR (repeatable)
  --output-root DIR     jobs' outputs must lie under DIR
  --allow-any-path      no roots: jobs may read and write any path this user may (a worker
                        refuses to start with neither roots nor this: anyone who may publish
                        a job could otherwise make it overwrite any file)

job options (as for `cargo xtask pipeline`):
  --resolution 256|512  --steps N  --chunk N  --no-face pass|error|interpolate
  --backend auto|gpu|cpu  --length loop|trim  --id ID (default: a fresh unique id)";

pub(crate) fn run(cmd: &str, args: &[String], caller_dir: &Path) -> Result<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return Ok(());
    }
    let a = Args::parse(args, caller_dir)?;
    let url = a.nats_config()?;
    match cmd {
        "worker" => worker(&url, a),
        "submit" => submit(&url, a),
        "watch" => watch(&url, a),
        _ => cancel(&url, a),
    }
}

#[derive(Debug, Default)]
struct Args {
    nats: Option<String>,
    video: Option<PathBuf>,
    audio: Option<PathBuf>,
    out: Option<PathBuf>,
    id: Option<String>,
    options: JobOptions,
    worker: WorkerConfig,
    timeout: Option<Duration>,
    positional: Vec<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    auth: Vec<(&'static str, Auth)>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    require_tls: bool,
    input_roots: Vec<PathBuf>,
    output_root: Option<PathBuf>,
    allow_any_path: bool,
}

impl Args {
    fn parse(args: &[String], caller_dir: &Path) -> Result<Self> {
        let mut a = Self::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !flag.starts_with("--") {
                a.positional.push(flag.clone());
                continue;
            }
            match flag.as_str() {
                "--require-tls" => {
                    a.require_tls = true;
                    continue;
                }
                "--allow-any-path" => {
                    a.allow_any_path = true;
                    continue;
                }
                _ => {}
            }
            let value = it
                .next()
                .with_context(|| format!("{flag} needs a value"))?
                .clone();
            let secs = |v: &str| -> Result<Duration> {
                let s: f64 = v.parse().with_context(|| format!("{flag} {v}"))?;
                Duration::try_from_secs_f64(s).with_context(|| format!("{flag} {v}"))
            };
            let o = &mut a.options;
            match flag.as_str() {
                "--nats" => {
                    if queue::url_has_credentials(&value) {
                        bail!(
                            "--nats {}: credentials on the command line are visible to every \
                             user of this machine; put the URL in $FACESYNC_NATS, or use \
                             --user with --password-file, or --token-file",
                            queue::redact_url(&value)
                        );
                    }
                    a.nats = Some(value)
                }
                "--user" => a.user = Some(value),
                "--password-file" => a.password_file = Some(caller_dir.join(value)),
                "--token-file" => {
                    let token = Secret::from_file(&caller_dir.join(value))?;
                    a.auth.push(("--token-file", Auth::Token(token)));
                }
                "--nkey-file" => {
                    let seed = Secret::from_file(&caller_dir.join(value))?;
                    a.auth.push(("--nkey-file", Auth::NKey(seed)));
                }
                "--creds" => a
                    .auth
                    .push(("--creds", Auth::CredsFile(caller_dir.join(value)))),
                "--tls-ca" => a.tls_ca = Some(caller_dir.join(value)),
                "--tls-cert" => a.tls_cert = Some(caller_dir.join(value)),
                "--tls-key" => a.tls_key = Some(caller_dir.join(value)),
                "--input-root" => a.input_roots.push(caller_dir.join(value)),
                "--output-root" => a.output_root = Some(caller_dir.join(value)),
                "--video" => a.video = Some(caller_dir.join(value)),
                "--audio" => a.audio = Some(caller_dir.join(value)),
                "--out" => a.out = Some(caller_dir.join(value)),
                "--id" => a.id = Some(value),
                "--resolution" => o.resolution = value.parse().context("--resolution")?,
                "--steps" => o.steps = value.parse().context("--steps")?,
                "--chunk" => o.chunk = value.parse().context("--chunk")?,
                "--no-face" => {
                    o.no_face = value
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--no-face {e}"))?
                }
                "--backend" => {
                    o.backend = value
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--backend {e}"))?
                }
                "--length" => {
                    o.length = value.parse().map_err(|e| anyhow::anyhow!("--length {e}"))?
                }
                "--name" => a.worker.name = value,
                "--ack-wait" => a.worker.ack_wait = secs(&value)?,
                "--max-attempts" => {
                    a.worker.max_attempts = value.parse().context("--max-attempts")?
                }
                "--retry-delay" => a.worker.retry_delay = secs(&value)?,
                "--max-jobs" => a.worker.max_jobs = Some(value.parse().context("--max-jobs")?),
                "--timeout" => a.timeout = Some(secs(&value)?),
                other => bail!("unknown option `{other}`\n\n{HELP}"),
            }
        }
        match (a.user.take(), a.password_file.take()) {
            (Some(user), Some(file)) => {
                let password = Secret::from_file(&file)?;
                a.auth
                    .push(("--user", Auth::UserPassword { user, password }));
            }
            (None, None) => {}
            _ => bail!("--user and --password-file go together"),
        }
        if a.auth.len() > 1 {
            let names: Vec<&str> = a.auth.iter().map(|(name, _)| *name).collect();
            bail!(
                "more than one kind of credentials given: {}",
                names.join(", ")
            );
        }
        a.worker.paths = match (
            a.allow_any_path,
            a.input_roots.is_empty(),
            a.output_root.take(),
        ) {
            (false, true, None) => PathPolicy::Unset,
            (false, false, Some(output)) => PathPolicy::Roots(PathRoots {
                inputs: std::mem::take(&mut a.input_roots),
                output,
            }),
            (false, _, _) => bail!("--input-root and --output-root go together"),
            (true, true, None) => PathPolicy::AnyPath,
            (true, _, _) => bail!("--allow-any-path and roots exclude each other"),
        };
        Ok(a)
    }

    /// The environment's connection settings ($FACESYNC_NATS*) with the flags on top.
    fn nats_config(&self) -> Result<NatsConfig> {
        let mut config = NatsConfig::from_env()?;
        if let Some(url) = &self.nats {
            config.url = url.clone();
        }
        if let Some((_, auth)) = self.auth.first() {
            config.auth = auth.clone();
        }
        if let Some(ca) = &self.tls_ca {
            config.tls.ca_file = Some(ca.clone());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                config.tls.client_cert = Some(ClientCert {
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            (None, None) => {}
            _ => bail!("--tls-cert and --tls-key go together"),
        }
        config.tls.required |= self.require_tls;
        Ok(config)
    }

    fn job_id(&self, cmd: &str) -> Result<&str> {
        match self.positional.as_slice() {
            [id] => Ok(id),
            _ => bail!("usage: cargo xtask {cmd} [--nats URL] JOB"),
        }
    }
}

fn connect(config: &NatsConfig) -> Result<Queue> {
    Ok(Queue::connect_with(config)?)
}

fn worker(url: &NatsConfig, a: Args) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .try_init();
    let queue = connect(url)?;
    let stop = CancelToken::new();
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.cancel()).context("cannot install the Ctrl-C handler")?;
    let stats = queue.run_worker(&a.worker, &stop)?;
    eprintln!(
        "worker {}: {} completed, {} cancelled, {} retried, {} dead, {} duplicate deliveries",
        a.worker.name,
        stats.completed,
        stats.cancelled,
        stats.retried,
        stats.dead,
        stats.duplicates
    );
    Ok(())
}

fn submit(url: &NatsConfig, a: Args) -> Result<()> {
    let (Some(video), Some(audio), Some(out)) = (a.video, a.audio, a.out) else {
        bail!("submit needs --video, --audio and --out");
    };
    let mut job = Job::new(video, audio, out, a.options);
    if let Some(id) = a.id {
        job.id = id;
    }
    connect(url)?.submit(&job)?;
    println!("{}", job.id);
    Ok(())
}

fn watch(url: &NatsConfig, a: Args) -> Result<()> {
    let id = a.job_id("watch")?;
    let queue = connect(url)?;
    let mut console = sinks::ConsoleSink::stderr();
    match queue.watch(id, &mut console, a.timeout)? {
        WatchEnd::Finished(result) => match result.outcome {
            JobOutcome::Completed => {
                let output = result.output.unwrap_or_default();
                eprintln!(
                    "job {id} completed by {}: {} ({} frames)",
                    result.worker,
                    output.display(),
                    result.frames.unwrap_or(0)
                );
                Ok(())
            }
            outcome => bail!(
                "job {id} ended {outcome:?}: {}",
                result.error.unwrap_or_default()
            ),
        },
        WatchEnd::Stopped => Ok(()),
        _ => Ok(()),
    }
}

fn cancel(url: &NatsConfig, a: Args) -> Result<()> {
    let id = a.job_id("cancel")?;
    connect(url)?.cancel(id)?;
    eprintln!("cancel requested for job {id}");
    Ok(())
}
