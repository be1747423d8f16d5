//! `cargo xtask bench queue`: what the NATS JetStream work queue costs next to running the
//! same jobs in one process.
//!
//! A local `nats-server -js` (loopback port, store under `target/facesync-bench/queue/`) and
//! one worker (a thread of this process, the same code as `cargo xtask worker`). N short jobs
//! (default 8; `cargo xtask bench queue N`) on the built-in sample (160×160, 1 s), measured
//! side by side, each the best of two rounds:
//! - local: `pipeline::run` on the N jobs one after another;
//! - queue: submit the N jobs, then wait for every result (the worker pulls one job at a
//!   time, publishes its progress, stores its result, acknowledges).
//!
//! Prints `queue-bench: jobs_per_s=<N / queue time> overhead_vs_local=<queue time / local time>`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pipeline::sample::{SampleSpec, write_sample};
use pipeline::{Inputs, PipelineConfig};
use progress_core::Progress;
use queue::local_server::LocalServer;
use queue::{CancelToken, Job, JobOptions, JobOutcome, PathPolicy, PathRoots, Queue, WorkerConfig};

pub(crate) fn run(args: &[String]) -> Result<()> {
    let n: usize = match args.first() {
        Some(v) => v.parse().with_context(|| format!("job count {v}"))?,
        None => 8,
    };
    if n == 0 {
        bail!("the job count must be at least 1");
    }
    let dir = Path::new("target/facesync-bench/queue");
    let _ = std::fs::remove_dir_all(dir);
    let spec = SampleSpec {
        width: 160,
        height: 160,
        seconds: 1.0,
        ..SampleSpec::default()
    };
    let files = write_sample(&dir.join("in"), &spec).context("cannot write the sample")?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out).context("cannot create the output folder")?;
    let options = JobOptions::default();
    let inputs = Inputs {
        video: std::path::absolute(&files.video)?,
        audio: std::path::absolute(&files.audio)?,
    };
    let out = std::path::absolute(&out)?;

    let server = LocalServer::start(&dir.join("nats"))?;
    let queue = Queue::connect(&server.url())?;
    let stop = CancelToken::new();
    let worker = {
        let (url, stop) = (server.url(), stop.clone());
        let paths = PathPolicy::Roots(PathRoots {
            inputs: vec![std::path::absolute(dir.join("in"))?],
            output: out.clone(),
        });
        std::thread::spawn(move || -> Result<()> {
            let config = WorkerConfig {
                name: "bench".into(),
                paths,
                ..WorkerConfig::default()
            };
            Queue::connect(&url)?.run_worker(&config, &stop)?;
            Ok(())
        })
    };
    // Warm-up: one job each way (first-run costs: page cache, allocator, connections).
    local(&options.config(), &inputs, &out, 1)?;
    through_queue(&queue, &options, &inputs, &out, 1)?;

    let (mut t_local, mut t_queue) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..2 {
        t_local = t_local.min(local(&options.config(), &inputs, &out, n)?);
        t_queue = t_queue.min(through_queue(&queue, &options, &inputs, &out, n)?);
    }
    stop.cancel();
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the worker thread panicked"))??;
    println!(
        "{n} jobs of {} frames: local {t_local:.2} s, queue with 1 worker {t_queue:.2} s",
        spec.frame_count()
    );
    println!(
        "queue-bench: jobs_per_s={:.2} overhead_vs_local={:.3}",
        n as f64 / t_queue,
        t_queue / t_local
    );
    Ok(())
}

/// Seconds to run `n` jobs one after another in this process.
fn local(config: &PipelineConfig, inputs: &Inputs, out: &Path, n: usize) -> Result<f64> {
    let start = Instant::now();
    for i in 0..n {
        let progress = Progress::new();
        let job = progress.phase("Lip sync", None, "frames");
        pipeline::run(config, inputs, &out.join(format!("local{i}.y4m")), &job)
            .context("local run")?;
        job.finish();
        drop(job);
        progress.shutdown();
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds from submitting `n` jobs to having all their results.
fn through_queue(
    queue: &Queue,
    options: &JobOptions,
    inputs: &Inputs,
    out: &Path,
    n: usize,
) -> Result<f64> {
    let start = Instant::now();
    let jobs: Vec<Job> = (0..n)
        .map(|i| {
            Job::new(
                &inputs.video,
                &inputs.audio,
                out.join(format!("queued{i}.y4m")),
                options.clone(),
            )
        })
        .collect();
    for job in &jobs {
        queue.submit(job)?;
    }
    for job in &jobs {
        let result = queue.wait_result(&job.id, Duration::from_secs(600))?;
        if result.outcome != JobOutcome::Completed {
            bail!(
                "job {} ended {:?}: {:?}",
                job.id,
                result.outcome,
                result.error
            );
        }
    }
    Ok(start.elapsed().as_secs_f64())
}
