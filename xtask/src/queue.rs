//! `cargo xtask worker | submit | watch | cancel`: facesync on a NATS JetStream work queue
//! (the `queue` crate), for a fleet of machines sharing the inputs' and outputs' storage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use queue::{CancelToken, Job, JobOptions, JobOutcome, Queue, WatchEnd, WorkerConfig};

pub(crate) const HELP: &str = "usage:
  cargo xtask worker [--nats URL] [worker options]   run jobs from the queue until Ctrl-C
  cargo xtask submit [--nats URL] --video IN --audio IN --out OUT [job options]
                                                     queue a job; prints its id
  cargo xtask watch  [--nats URL] [--timeout S] JOB  follow a job's progress (console) until it ends
  cargo xtask cancel [--nats URL] JOB                cancel a job (running or waiting)

--nats URL defaults to $FACESYNC_NATS, else nats://127.0.0.1:4222; the server needs JetStream
(`nats-server -js`). Paths are made absolute from the current directory: workers must see
them at the same place (shared storage).

worker options:
  --name NAME           name in results and logs (default <host>-<pid>)
  --ack-wait S          seconds before a silent worker's job is redelivered (default 30; set
                        by the first worker on a fresh server)
  --max-attempts N      deliveries per job before it goes to the dead letters (default 3)
  --retry-delay S       seconds before a failed job is delivered again (default 5)
  --max-jobs N          stop after N jobs

job options (as for `cargo xtask pipeline`):
  --resolution 256|512  --steps N  --chunk N  --no-face pass|error|interpolate
  --backend auto|gpu|cpu  --length loop|trim  --id ID (default: a fresh unique id)";

pub(crate) fn run(cmd: &str, args: &[String], caller_dir: &Path) -> Result<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return Ok(());
    }
    let mut a = Args::parse(args, caller_dir)?;
    let url = a.nats.take().unwrap_or_else(|| {
        std::env::var("FACESYNC_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
    });
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
                "--nats" => a.nats = Some(value),
                "--video" => a.video = Some(caller_dir.join(value)),
                "--audio" => a.audio = Some(caller_dir.join(value)),
                "--out" => a.out = Some(caller_dir.join(value)),
                "--id" => a.id = Some(value),
                "--resolution" => o.resolution = value.parse().context("--resolution")?,
                "--steps" => o.steps = value.parse().context("--steps")?,
                "--chunk" => o.chunk = value.parse().context("--chunk")?,
                "--no-face" => o.no_face = value.parse().context("--no-face")?,
                "--backend" => o.backend = value.parse().context("--backend")?,
                "--length" => o.length = value.parse().context("--length")?,
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
        Ok(a)
    }

    fn job_id(&self, cmd: &str) -> Result<&str> {
        match self.positional.as_slice() {
            [id] => Ok(id),
            _ => bail!("usage: cargo xtask {cmd} [--nats URL] JOB"),
        }
    }
}

fn connect(url: &str) -> Result<Queue> {
    Ok(Queue::connect(url)?)
}

fn worker(url: &str, a: Args) -> Result<()> {
    // Plain text unless stderr is a terminal (a worker's stderr is usually a log file).
    sinks::init_stderr_log("info,async_nats=warn");
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

fn submit(url: &str, a: Args) -> Result<()> {
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

fn watch(url: &str, a: Args) -> Result<()> {
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

fn cancel(url: &str, a: Args) -> Result<()> {
    let id = a.job_id("cancel")?;
    connect(url)?.cancel(id)?;
    eprintln!("cancel requested for job {id}");
    Ok(())
}
