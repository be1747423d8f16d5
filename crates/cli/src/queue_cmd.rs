//! `facesync worker | submit | watch | cancel`: facesync on a NATS JetStream work queue (the
//! `queue` crate), for a fleet of machines sharing the inputs' and outputs' storage.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use pipeline::ModelSpec;
use queue::{CancelToken, Job, JobOptions, JobOutcome, Queue, WatchEnd, WorkerConfig};

use crate::options::{JobArgs, seconds};

pub(crate) const WORKER_EXAMPLES: &str = "\
The server needs JetStream (`nats-server -js`). Workers must see the jobs' paths at the same
place (shared storage). Ctrl-C hands the running job back to the queue and stops.

Examples:
  facesync worker
      run jobs from nats://127.0.0.1:4222 (or $FACESYNC_NATS) until Ctrl-C
  facesync worker --nats nats://queue-host:4222 --name gpu-box-1 --max-jobs 10";

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

/// Where the queue is.
#[derive(Debug, Clone, Args)]
pub(crate) struct Nats {
    /// NATS server URL (JetStream enabled)
    #[arg(
        long,
        value_name = "URL",
        env = "FACESYNC_NATS",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats: String,
}

impl Nats {
    fn connect(&self) -> Result<Queue> {
        Queue::connect(&self.nats).with_context(|| format!("cannot use the queue at {}", self.nats))
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
    let config = args.job.config()?;
    let absolute = |p: &PathBuf| {
        std::path::absolute(p).with_context(|| format!("{}: cannot make it absolute", p.display()))
    };
    // The model's path as the workers see it: absolute, like the media paths.
    let model = match config.model {
        ModelSpec::Wav2Lip(p) => ModelSpec::Wav2Lip(absolute(&p)?),
        ModelSpec::EdTalk(p) => ModelSpec::EdTalk(absolute(&p)?),
        ModelSpec::LatentSync(p) => ModelSpec::LatentSync(absolute(&p)?),
        other => other,
    };
    let options = JobOptions {
        resolution: config.resolution,
        steps: config.steps,
        chunk: config.chunk,
        no_face: config.no_face,
        backend: config.backend,
        length: config.length,
        model,
        model_weight: config.model_weight,
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
