//! `facesync worker | submit | watch | cancel`: facesync on a NATS JetStream work queue (the
//! `queue` crate), for a fleet of machines sharing the inputs' and outputs' storage.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use pipeline::ModelSpec;
use queue::{
    Auth, CancelToken, ClientCert, Job, JobOutcome, NatsConfig, PathPolicy, PathRoots, Queue,
    Secret, WatchEnd, WorkerConfig,
};

use crate::options::{JobArgs, seconds};

pub(crate) const WORKER_EXAMPLES: &str = "\
The server needs JetStream (`nats-server -js`). Workers must see the jobs' paths at the same
place (shared storage). Ctrl-C hands the running job back to the queue and stops.

Examples:
  facesync worker --input-root /shared/in --output-root /shared/out
      run jobs from nats://127.0.0.1:4222 (or $FACESYNC_NATS) until Ctrl-C; only paths under
      the roots
  FACESYNC_NATS_CREDS=/etc/facesync/worker.creds facesync worker --nats tls://queue-host:4222 \
      --tls-ca /etc/facesync/ca.pem --require-tls --input-root /shared --output-root /shared/out \
      --name gpu-box-1 --max-jobs 10
  facesync worker --allow-any-path
      a single-user machine: jobs may use any path this user may

Connection settings also come from the environment: FACESYNC_NATS (URL), FACESYNC_NATS_USER
with FACESYNC_NATS_PASSWORD[_FILE], FACESYNC_NATS_TOKEN[_FILE], FACESYNC_NATS_NKEY_FILE,
FACESYNC_NATS_CREDS, FACESYNC_NATS_CA, FACESYNC_NATS_CERT + FACESYNC_NATS_KEY,
FACESYNC_NATS_REQUIRE_TLS=1; a flag overrides its variable.";

pub(crate) const SUBMIT_EXAMPLES: &str = "\
Paths are made absolute from the current directory: workers must see them at the same place.
Prints the job's id on stdout.

Examples:
  facesync submit --video in.y4m --audio in.wav --out out.mp4
  facesync submit --nats nats://queue-host:4222 --video /shared/in.mp4 --audio /shared/a.wav \\
      --out /shared/out.mp4 --steps 10 --id take-42";

pub(crate) const WATCH_EXAMPLES: &str = "\
Replays the job's progress from its start, then follows it; exit code 0 when it completed, 1
when it was cancelled or failed for good.

Examples:
  facesync watch 4Zl3bB1UqT1d2yqN5nH0Xb
  facesync watch --nats nats://queue-host:4222 --timeout 600 take-42";

pub(crate) const CANCEL_EXAMPLES: &str = "\
Examples:
  facesync cancel 4Zl3bB1UqT1d2yqN5nH0Xb
  facesync cancel --nats nats://queue-host:4222 take-42";

/// Where the queue is and how to log in. Secrets come from files or the environment, never
/// from the command line alone (a URL with a password goes in $FACESYNC_NATS, not --nats).
#[derive(Debug, Clone, Args)]
pub(crate) struct Nats {
    /// NATS server URL (JetStream enabled); tls:// for TLS [default: $FACESYNC_NATS, else
    /// nats://127.0.0.1:4222]
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// User name, with --password-file [default: $FACESYNC_NATS_USER with
    /// $FACESYNC_NATS_PASSWORD or $FACESYNC_NATS_PASSWORD_FILE]
    #[arg(long, value_name = "NAME", requires = "password_file")]
    user: Option<String>,
    /// File holding the user's password
    #[arg(long, value_name = "FILE", requires = "user")]
    password_file: Option<PathBuf>,
    /// File holding a token [default: $FACESYNC_NATS_TOKEN or $FACESYNC_NATS_TOKEN_FILE]
    #[arg(long, value_name = "FILE", conflicts_with_all = ["user", "nkey_file", "creds"])]
    token_file: Option<PathBuf>,
    /// File holding an NKey seed [default: $FACESYNC_NATS_NKEY_FILE]
    #[arg(long, value_name = "FILE", conflicts_with_all = ["user", "creds"])]
    nkey_file: Option<PathBuf>,
    /// A .creds file (JWT + NKey seed) [default: $FACESYNC_NATS_CREDS]
    #[arg(long, value_name = "FILE", conflicts_with = "user")]
    creds: Option<PathBuf>,
    /// Trust only the certificate authorities in this PEM file [default: $FACESYNC_NATS_CA]
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// This client's certificate for mutual TLS, with --tls-key [default: $FACESYNC_NATS_CERT]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// This client's private key [default: $FACESYNC_NATS_KEY]
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse a plain (non-TLS) connection [default: $FACESYNC_NATS_REQUIRE_TLS=1]
    #[arg(long)]
    require_tls: bool,
}

impl Nats {
    /// The environment's connection settings ($FACESYNC_NATS*) with the flags on top.
    fn config(&self) -> Result<NatsConfig> {
        let mut config = NatsConfig::from_env()?;
        if let Some(url) = &self.nats {
            if queue::url_has_credentials(url) {
                bail!(
                    "--nats {}: credentials on the command line are visible to every user of \
                     this machine; put the URL in $FACESYNC_NATS, or use --user with \
                     --password-file, or --token-file",
                    queue::redact_url(url)
                );
            }
            config.url = url.clone();
        }
        if let (Some(user), Some(file)) = (&self.user, &self.password_file) {
            config.auth = Auth::UserPassword {
                user: user.clone(),
                password: Secret::from_file(file)?,
            };
        }
        if let Some(file) = &self.token_file {
            config.auth = Auth::Token(Secret::from_file(file)?);
        }
        if let Some(file) = &self.nkey_file {
            config.auth = Auth::NKey(Secret::from_file(file)?);
        }
        if let Some(file) = &self.creds {
            config.auth = Auth::CredsFile(file.clone());
        }
        if let Some(ca) = &self.tls_ca {
            config.tls.ca_file = Some(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls.client_cert = Some(ClientCert {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        config.tls.required |= self.require_tls;
        Ok(config)
    }

    fn connect(&self) -> Result<Queue> {
        let config = self.config()?;
        Queue::connect_with(&config)
            .with_context(|| format!("cannot use the queue at {}", config.display_url()))
    }
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    nats: Nats,
    /// Name in results and logs [default: <host>-<pid>]
    #[arg(long)]
    name: Option<String>,
    /// Seconds before a silent worker's job is redelivered (set by the first worker on a
    /// fresh server) [default: 30]
    #[arg(long, value_name = "S", value_parser = seconds)]
    ack_wait: Option<Duration>,
    /// Deliveries per job before it goes to the dead letters [default: 3]
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    /// Seconds before a failed job is delivered again [default: 5]
    #[arg(long, value_name = "S", value_parser = seconds)]
    retry_delay: Option<Duration>,
    /// Stop after N jobs
    #[arg(long, value_name = "N")]
    max_jobs: Option<u64>,
    /// Jobs' inputs must lie under DIR (repeatable; with --output-root). A job whose path,
    /// resolved (`..` and symlinks included), lies outside is dead-lettered unread
    #[arg(long, value_name = "DIR", requires = "output_root")]
    input_root: Vec<PathBuf>,
    /// Jobs' outputs must lie under DIR (with --input-root)
    #[arg(long, value_name = "DIR", requires = "input_root")]
    output_root: Option<PathBuf>,
    /// No roots: jobs may read and write any path this user may. Without roots or this flag
    /// a worker refuses to start: anyone who may publish a job could otherwise make every
    /// worker overwrite any file it can write
    #[arg(long, conflicts_with_all = ["input_root", "output_root"])]
    allow_any_path: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    nats: Nats,
    /// Video, as the workers see it
    #[arg(long, value_name = "IN")]
    video: PathBuf,
    /// Audio, as the workers see it
    #[arg(long, value_name = "IN")]
    audio: PathBuf,
    /// Output, as the workers see it
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    #[command(flatten)]
    job: JobArgs,
    /// The job's id: 1 to 64 ASCII letters, digits, '-' or '_' [default: a fresh unique id]
    #[arg(long)]
    id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    nats: Nats,
    /// Stop watching after S seconds without an end (the job goes on)
    #[arg(long, value_name = "S", value_parser = seconds)]
    timeout: Option<Duration>,
    /// The job's id (as `submit` printed it)
    job: String,
}

#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    #[command(flatten)]
    nats: Nats,
    /// The job's id (as `submit` printed it)
    job: String,
}

/// `facesync worker`.
pub(crate) fn worker(args: &WorkerArgs) -> Result<()> {
    crate::init_logging("info,async_nats=warn");
    let mut config = WorkerConfig::default();
    if let Some(name) = &args.name {
        config.name = name.clone();
    }
    if let Some(v) = args.ack_wait {
        config.ack_wait = v;
    }
    if let Some(v) = args.max_attempts {
        config.max_attempts = v;
    }
    if let Some(v) = args.retry_delay {
        config.retry_delay = v;
    }
    config.max_jobs = args.max_jobs;
    config.paths = match (&args.output_root, args.allow_any_path) {
        (Some(output), _) => PathPolicy::Roots(PathRoots {
            inputs: args.input_root.clone(),
            output: output.clone(),
        }),
        (None, true) => PathPolicy::AnyPath,
        (None, false) => PathPolicy::Unset,
    };
    let queue = args.nats.connect()?;
    let stop = CancelToken::new();
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.cancel()).context("cannot install the Ctrl-C handler")?;
    let stats = queue.run_worker(&config, &stop)?;
    eprintln!(
        "worker {}: {} completed, {} cancelled, {} retried, {} dead, {} duplicate deliveries",
        config.name, stats.completed, stats.cancelled, stats.retried, stats.dead, stats.duplicates
    );
    Ok(())
}

/// `facesync submit`.
pub(crate) fn submit(args: &SubmitArgs) -> Result<()> {
    let mut options = args.job.options.clone();
    let absolute = |p: &PathBuf| {
        std::path::absolute(p).with_context(|| format!("{}: cannot make it absolute", p.display()))
    };
    // The model's path as the workers see it: absolute, like the media paths.
    options.model = match options.model {
        ModelSpec::Wav2Lip(p) => ModelSpec::Wav2Lip(absolute(&p)?),
        ModelSpec::EdTalk(p) => ModelSpec::EdTalk(absolute(&p)?),
        ModelSpec::LatentSync(p) => ModelSpec::LatentSync(absolute(&p)?),
        other => other,
    };
    let mut job = Job::new(
        absolute(&args.video)?,
        absolute(&args.audio)?,
        absolute(&args.out)?,
        options,
    );
    if let Some(id) = &args.id {
        job.id = id.clone();
    }
    job.validate()?;
    args.nats.connect()?.submit(&job)?;
    println!("{}", job.id);
    Ok(())
}

/// `facesync watch`.
pub(crate) fn watch(args: &WatchArgs) -> Result<()> {
    let id = &args.job;
    let queue = args.nats.connect()?;
    let mut console = sinks::ConsoleSink::stderr();
    match queue.watch(id, &mut console, args.timeout)? {
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
        _ => Ok(()),
    }
}

/// `facesync cancel`.
pub(crate) fn cancel(args: &CancelArgs) -> Result<()> {
    args.nats.connect()?.cancel(&args.job)?;
    eprintln!("cancel requested for job {}", args.job);
    Ok(())
}
