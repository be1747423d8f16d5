//! `cargo xtask bench queue`: what the NATS JetStream work queue costs next to running the
//! same jobs in one process.
//!
//! A local `nats-server -js` (loopback port, store under `target/facesync-bench/queue/`) and
//! one worker (a thread of this process, the same code as `facesync worker`). N short jobs
//! (default 8; `cargo xtask bench queue N`) on the built-in sample (160×160, 1 s), measured
//! side by side, each the best of two rounds:
//! - local: `pipeline::run` on the N jobs one after another;
//! - queue: submit the N jobs, then wait for every result (the worker pulls one job at a
//!   time, publishes its progress, stores its result, acknowledges).
//!
//! The queue is measured twice in each round, side by side: on a plain server (no
//! credentials, no TLS) and on a secured one running `crates/queue/fleet.conf` (TLS verified
//! by a CA made for the run, the worker authenticated by an NKey, the submitter by a
//! password, per-role subject permissions), the worker confined to input and output roots.
//!
//! Prints `queue-bench: jobs_per_s=<N / queue time> overhead_vs_local=<queue time / local time>`
//! for the plain server and `queue-bench-secured: …` for the secured one.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pipeline::sample::{SampleSpec, write_sample};
use pipeline::{Inputs, PipelineConfig};
use progress_core::Progress;
use queue::FLEET_CONF;
use queue::{
    Auth, CancelToken, Job, JobOutcome, NatsConfig, PathPolicy, PathRoots, Queue, RunOptions,
    Secret, TlsConfig, WorkerConfig,
};
use test_kit::nats::{LocalServer, ServerConfig};

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
    let options = RunOptions::default();
    let inputs = Inputs {
        video: std::path::absolute(&files.video)?,
        audio: std::path::absolute(&files.audio)?,
    };
    let out = std::path::absolute(&out)?;

    let paths = PathPolicy::Roots(PathRoots {
        inputs: vec![std::path::absolute(dir.join("in"))?],
        output: out.clone(),
    });
    let plain_server = LocalServer::start(&dir.join("nats-plain"))?;
    let plain = Fleet::start(
        NatsConfig {
            url: plain_server.url(),
            ..NatsConfig::default()
        },
        NatsConfig {
            url: plain_server.url(),
            ..NatsConfig::default()
        },
        paths.clone(),
    )?;
    let (secured_server, worker_config, submitter_config) = secured_server(dir)?;
    let secured = Fleet::start(worker_config, submitter_config, paths)?;

    // Warm-up: one job each way (first-run costs: page cache, allocator, connections).
    local(&options.clone().into(), &inputs, &out, 1)?;
    through_queue(&plain.queue, &options, &inputs, &out, 1)?;
    through_queue(&secured.queue, &options, &inputs, &out, 1)?;

    let (mut t_local, mut t_plain, mut t_secured) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for _ in 0..2 {
        t_local = t_local.min(local(&options.clone().into(), &inputs, &out, n)?);
        t_plain = t_plain.min(through_queue(&plain.queue, &options, &inputs, &out, n)?);
        t_secured = t_secured.min(through_queue(&secured.queue, &options, &inputs, &out, n)?);
    }
    plain.stop()?;
    secured.stop()?;
    drop((plain_server, secured_server));
    println!(
        "{n} jobs of {} frames: local {t_local:.2} s, queue with 1 worker {t_plain:.2} s \
         (plain), {t_secured:.2} s (TLS, NKey and password, subject permissions, path roots)",
        spec.frame_count()
    );
    println!(
        "queue-bench: jobs_per_s={:.2} overhead_vs_local={:.3}",
        n as f64 / t_plain,
        t_plain / t_local
    );
    println!(
        "queue-bench-secured: jobs_per_s={:.2} overhead_vs_local={:.3}",
        n as f64 / t_secured,
        t_secured / t_local
    );
    Ok(())
}

/// A submitter's connection and a worker thread of this process.
struct Fleet {
    queue: Queue,
    stop: CancelToken,
    worker: std::thread::JoinHandle<Result<()>>,
}

impl Fleet {
    fn start(worker: NatsConfig, submitter: NatsConfig, paths: PathPolicy) -> Result<Self> {
        // The worker connects first: it creates the streams (a submitter may not).
        let worker_queue = Queue::connect_with(&worker)?;
        let queue = Queue::connect_with(&submitter)?;
        let stop = CancelToken::new();
        let on = stop.clone();
        let worker = std::thread::spawn(move || -> Result<()> {
            let config = WorkerConfig {
                name: "bench".into(),
                paths,
                ..WorkerConfig::default()
            };
            worker_queue.run_worker(&config, &on)?;
            Ok(())
        });
        Ok(Self {
            queue,
            stop,
            worker,
        })
    }

    fn stop(self) -> Result<()> {
        self.stop.cancel();
        self.worker
            .join()
            .map_err(|_| anyhow::anyhow!("the worker thread panicked"))?
    }
}

/// A server running `fleet.conf` with certificates made for the run, and the worker's and
/// the submitter's connection settings.
fn secured_server(dir: &Path) -> Result<(LocalServer, NatsConfig, NatsConfig)> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &ca)?;
    let (ca_file, cert_file, key_file) = (
        pki.join("ca.pem"),
        pki.join("server.pem"),
        pki.join("server-key.pem"),
    );
    std::fs::write(&ca_file, ca.pem())?;
    std::fs::write(&cert_file, cert.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    let worker_key = nkeys::KeyPair::new_user();
    let password = nuid::next().to_string();
    let text = |p: &Path| std::path::absolute(p).map(|p| p.display().to_string());
    let config = ServerConfig {
        text: FLEET_CONF.into(),
        env: vec![
            ("FACESYNC_WORKER_NKEY".into(), worker_key.public_key()),
            ("FACESYNC_SUBMITTER_PASSWORD".into(), password.clone()),
            ("FACESYNC_WATCHER_PASSWORD".into(), nuid::next().to_string()),
            ("FACESYNC_TLS_CERT".into(), text(&cert_file)?),
            ("FACESYNC_TLS_KEY".into(), text(&key_file)?),
        ],
    };
    let server = LocalServer::start_configured(&dir.join("nats-secured"), &config)?;
    let tls = TlsConfig {
        ca_file: Some(std::path::absolute(&ca_file)?),
        client_cert: None,
        required: true,
    };
    let worker = NatsConfig {
        url: server.tls_url(),
        auth: Auth::NKey(Secret::new(
            worker_key.seed().context("the worker's NKey seed")?,
        )),
        tls: tls.clone(),
    };
    let submitter = NatsConfig {
        url: server.tls_url(),
        auth: Auth::UserPassword {
            user: "submitter".into(),
            password: Secret::new(password),
        },
        tls,
    };
    Ok((server, worker, submitter))
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
    options: &RunOptions,
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
