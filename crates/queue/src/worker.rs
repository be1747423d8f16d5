//! The worker loop: pull one job, run it, acknowledge, repeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use pipeline::{Inputs, PipelineError};
use progress_core::{CancelToken, Progress};

use crate::client::{Queue, ensure_streams, json};
use crate::job::{DeadLetter, Job, JobOutcome, JobResult, MAX_JOB_BYTES};
use crate::names::{self, EVENTS_STREAM, JOBS_STREAM, WORKERS_CONSUMER};
use crate::roots::{Allowed, JobPaths, PathPolicy};
use crate::sink::{CHANNEL, NatsSink};
use crate::{QueueError, Text};

const TARGET: &str = "facesync::queue";

/// How much of a message that is not a job its dead letter keeps.
const DEAD_PAYLOAD_BYTES: usize = 4096;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Its name in results, dead letters and logs (default `<host>-<pid>`).
    pub name: String,
    /// How long the server waits for an acknowledgement before it redelivers a job (default
    /// 30 s): a killed worker's job comes back after this. Set when the workers' consumer is
    /// created, i.e. by the first worker to start on a fresh server. The running job is
    /// kept alive with in-progress acks every third of it.
    pub ack_wait: Duration,
    /// Deliveries allowed per job (default 3); a job that fails (or whose worker dies) on
    /// the last one goes to its dead-letter subject.
    pub max_attempts: u32,
    /// How long a failed job waits before it is delivered again (default 5 s).
    pub retry_delay: Duration,
    /// At most one progress snapshot per phase per this interval is published (default
    /// 250 ms; progress-core samples at 10 Hz).
    pub progress_interval: Duration,
    /// Stop after this many jobs have been handled (default: never).
    pub max_jobs: Option<u64>,
    /// Which paths jobs may read and write. The default ([`PathPolicy::Unset`]) makes
    /// [`Queue::run_worker`] refuse to start; a job outside the roots is dead-lettered at
    /// once, before anything is read or written.
    pub paths: PathPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "worker".into());
        Self {
            name: format!("{host}-{}", std::process::id()),
            ack_wait: Duration::from_secs(30),
            max_attempts: 3,
            retry_delay: Duration::from_secs(5),
            progress_interval: Duration::from_millis(250),
            max_jobs: None,
            paths: PathPolicy::Unset,
        }
    }
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs completed.
    pub completed: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Failed attempts handed back for a retry.
    pub retried: u64,
    /// Jobs sent to the dead letters.
    pub dead: u64,
    /// Deliveries of jobs already finished, acknowledged without running them.
    pub duplicates: u64,
    /// Jobs handed back because the worker was stopping.
    pub handed_back: u64,
}

impl WorkerStats {
    fn handled(&self) -> u64 {
        self.completed + self.cancelled + self.retried + self.dead + self.duplicates
    }
}

impl Queue {
    /// Runs jobs one at a time until `stop` is cancelled (a running job is then cancelled
    /// and handed back to the queue at once) or [`WorkerConfig::max_jobs`] are handled.
    /// Connection losses are waited out: the client reconnects and the loop goes on.
    pub fn run_worker(
        &self,
        config: &WorkerConfig,
        stop: &CancelToken,
    ) -> Result<WorkerStats, QueueError> {
        self.rt.block_on(async {
            let worker = Worker::new(self, config, stop).await?;
            worker.run().await
        })
    }
}

struct Worker<'a> {
    js: &'a jetstream::Context,
    client: &'a async_nats::Client,
    consumer: consumer::PullConsumer,
    events: jetstream::stream::Stream,
    config: &'a WorkerConfig,
    stop: &'a CancelToken,
    allowed: Allowed,
}

/// How one delivery ended, for the acknowledgement.
enum Handled {
    Acked(JobOutcome),
    Retry,
    Dead,
    Duplicate,
    HandedBack,
}

impl<'a> Worker<'a> {
    async fn new(
        queue: &'a Queue,
        config: &'a WorkerConfig,
        stop: &'a CancelToken,
    ) -> Result<Self, QueueError> {
        let allowed = config.paths.resolve()?;
        let js = &queue.js;
        ensure_streams(js).await?;
        let what = "creating the workers' consumer";
        let jobs = js
            .get_stream(JOBS_STREAM)
            .await
            .text()
            .map_err(QueueError::nats(what))?;
        let mut consumer: consumer::PullConsumer = jobs
            .get_or_create_consumer(
                WORKERS_CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(WORKERS_CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    // The worker counts deliveries itself, so that the last one can write a
                    // dead letter (the server would drop the job silently).
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .text()
            .map_err(QueueError::nats(what))?;
        if let Ok(info) = consumer.info().await
            && info.config.ack_wait != config.ack_wait
        {
            tracing::warn!(
                target: TARGET,
                "the workers' consumer exists with ack_wait {:?}; this worker's {:?} is not used",
                info.config.ack_wait,
                config.ack_wait
            );
        }
        let events = js
            .get_stream(EVENTS_STREAM)
            .await
            .text()
            .map_err(QueueError::nats("opening the events stream"))?;
        Ok(Self {
            js,
            client: &queue.client,
            consumer,
            events,
            config,
            stop,
            allowed,
        })
    }

    async fn run(&self) -> Result<WorkerStats, QueueError> {
        let mut stats = WorkerStats::default();
        tracing::info!(target: TARGET, "worker {} waiting for jobs", self.config.name);
        while !self.stop.is_cancelled()
            && self.config.max_jobs.is_none_or(|max| stats.handled() < max)
        {
            let Some(message) = self.next_job().await else {
                continue;
            };
            match self.handle(message).await {
                Handled::Acked(JobOutcome::Completed) => stats.completed += 1,
                Handled::Acked(JobOutcome::Cancelled) => stats.cancelled += 1,
                Handled::Acked(JobOutcome::Dead) | Handled::Dead => stats.dead += 1,
                Handled::Retry => stats.retried += 1,
                Handled::Duplicate => stats.duplicates += 1,
                Handled::HandedBack => stats.handed_back += 1,
            }
        }
        tracing::info!(target: TARGET, "worker {} stopping: {stats:?}", self.config.name);
        Ok(stats)
    }

    /// One pull of at most one job, waiting up to a second; `None` when there was none or
    /// the server could not be reached (then after a pause).
    async fn next_job(&self) -> Option<jetstream::Message> {
        let expires = Duration::from_secs(1);
        let pull = async {
            let mut batch = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(expires)
                .messages()
                .await
                .text()?;
            batch.next().await.transpose().text()
        };
        match tokio::time::timeout(expires + Duration::from_secs(4), pull).await {
            Ok(Ok(message)) => message,
            Ok(Err(e)) => {
                tracing::warn!(target: TARGET, "cannot pull a job (retrying): {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                None
            }
            Err(_) => {
                tracing::warn!(target: TARGET, "no answer to a pull request (retrying)");
                None
            }
        }
    }

    async fn handle(&self, message: jetstream::Message) -> Handled {
        let delivered = message
            .info()
            .map(|i| u64::try_from(i.delivered).unwrap_or(1))
            .unwrap_or(1);
        let message = Arc::new(message);
        let job = match Job::decode(&message.payload) {
            Ok(job) => job,
            Err(error) => {
                let payload = &message.payload;
                // The id, when the message has a usable one, so that the sender's `watch`
                // sees the job end; no parsing of an oversized message.
                let id = (payload.len() <= MAX_JOB_BYTES)
                    .then(|| serde_json::from_slice::<serde_json::Value>(payload).ok())
                    .flatten()
                    .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(String::from))
                    .filter(|id| names::valid_job_id(id))
                    .unwrap_or_else(|| "unknown".into());
                let shown = &payload[..payload.len().min(DEAD_PAYLOAD_BYTES)];
                let payload = String::from_utf8_lossy(shown).into_owned();
                self.bury(
                    &message,
                    &id,
                    None,
                    Some(payload),
                    error.to_string(),
                    delivered,
                )
                .await;
                return Handled::Dead;
            }
        };
        if let Some(done) = self.stored_result(&job.id).await {
            tracing::info!(
                target: TARGET,
                "job {} was finished already ({:?}); acknowledging delivery {delivered}",
                job.id,
                done.outcome
            );
            self.ack(&message, &job.id).await;
            return Handled::Duplicate;
        }
        if delivered > u64::from(self.config.max_attempts) {
            let error = format!(
                "no worker finished it in {} deliveries (each worker died or lost its \
                 connection before acknowledging)",
                delivered - 1
            );
            self.bury(&message, &job.id, Some(job.clone()), None, error, delivered)
                .await;
            return Handled::Dead;
        }
        let mut outcome = JobResult {
            job: job.id.clone(),
            outcome: JobOutcome::Completed,
            error: None,
            output: None,
            frames: None,
            delivery: delivered,
            worker: self.config.name.clone(),
            elapsed: 0.0,
        };
        // Before anything is read or written: a job outside the roots never runs here, and
        // no other worker would run it either (they share the fleet's roots), so at once.
        let paths = match self.allowed.check(&job) {
            Ok(paths) => paths,
            Err(error) => {
                let error = format!("refused: {error}");
                self.bury(&message, &job.id, Some(job.clone()), None, error, delivered)
                    .await;
                return Handled::Dead;
            }
        };
        if self.cancel_requested(&job.id).await {
            outcome.outcome = JobOutcome::Cancelled;
            outcome.error = Some("cancelled before it started".into());
            if !self.publish_result(&outcome).await {
                return self.retry(&message, &job.id, Duration::ZERO).await;
            }
            self.ack(&message, &job.id).await;
            tracing::info!(target: TARGET, "cancelled job {} before it started", job.id);
            return Handled::Acked(JobOutcome::Cancelled);
        }
        tracing::info!(target: TARGET, "running job {} (delivery {delivered})", job.id);
        let started = Instant::now();
        let (result, user_cancel) = self.run_job(&job, paths, &message).await;
        outcome.elapsed = started.elapsed().as_secs_f64();
        let elapsed = outcome.elapsed;
        match result {
            Ok(summary) => {
                outcome.output = Some(job.output.clone());
                outcome.frames = Some(summary.frames);
                if !self.publish_result(&outcome).await {
                    return self.retry(&message, &job.id, Duration::ZERO).await;
                }
                self.ack(&message, &job.id).await;
                tracing::info!(
                    target: TARGET,
                    "completed job {} ({} frames, {elapsed:.1} s)",
                    job.id,
                    outcome.frames.unwrap_or(0)
                );
                Handled::Acked(JobOutcome::Completed)
            }
            Err(PipelineError::Cancelled { phase }) if user_cancel => {
                outcome.outcome = JobOutcome::Cancelled;
                outcome.error = Some(format!("cancelled during {phase}"));
                if !self.publish_result(&outcome).await {
                    return self.retry(&message, &job.id, Duration::ZERO).await;
                }
                self.ack(&message, &job.id).await;
                tracing::info!(target: TARGET, "cancelled job {} during {phase}", job.id);
                Handled::Acked(JobOutcome::Cancelled)
            }
            Err(PipelineError::Cancelled { .. }) => {
                tracing::info!(target: TARGET, "handing job {} back: the worker stops", job.id);
                let _ = message.ack_with(AckKind::Nak(None)).await;
                Handled::HandedBack
            }
            Err(e) => {
                let error = format!(
                    "lip sync of {} with {} failed: {e}",
                    job.video.display(),
                    job.audio.display()
                );
                if delivered >= u64::from(self.config.max_attempts) {
                    self.bury(&message, &job.id, Some(job.clone()), None, error, delivered)
                        .await;
                    return Handled::Dead;
                }
                tracing::warn!(
                    target: TARGET,
                    "job {} failed on delivery {delivered} of {} (retrying in {:?}): {error}",
                    job.id,
                    self.config.max_attempts,
                    self.config.retry_delay
                );
                self.retry(&message, &job.id, self.config.retry_delay).await
            }
        }
    }

    /// Runs the pipeline on a blocking thread with the job's cancel subscription, progress
    /// publisher and in-progress acks around it. Returns whether a cancel request (rather
    /// than the worker stopping) fired the token.
    async fn run_job(
        &self,
        job: &Job,
        paths: JobPaths,
        message: &Arc<jetstream::Message>,
    ) -> (Result<pipeline::Summary, PipelineError>, bool) {
        let token = CancelToken::new();
        let user_cancel = Arc::new(AtomicBool::new(false));
        let cancel_subject = names::cancel_subject(&job.id);
        // Subscribe first, then look for a request stored before: none can slip between.
        let subscription = self.client.subscribe(cancel_subject.clone()).await;
        if self.cancel_requested(&job.id).await {
            user_cancel.store(true, Ordering::Release);
            token.cancel();
        }
        let watcher = {
            let (token, user_cancel, stop) =
                (token.clone(), user_cancel.clone(), self.stop.clone());
            tokio::spawn(async move {
                let mut subscription = subscription.ok();
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        Some(_) = async { match subscription.as_mut() {
                            Some(s) => s.next().await,
                            None => std::future::pending().await,
                        } } => {
                            user_cancel.store(true, Ordering::Release);
                            token.cancel();
                        }
                        _ = tick.tick() => if stop.is_cancelled() { token.cancel(); }
                    }
                }
            })
        };
        let heartbeat = {
            let message = Arc::clone(message);
            let every = (self.config.ack_wait / 3).max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                        tracing::debug!(target: TARGET, "in-progress ack failed: {e}");
                    }
                }
            })
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(CHANNEL);
        let publisher = {
            let client = self.client.clone();
            let subject = names::progress_subject(&job.id);
            tokio::spawn(async move {
                while let Some(payload) = rx.recv().await {
                    if let Err(e) = client.publish(subject.clone(), payload).await {
                        tracing::debug!(target: TARGET, "progress publish failed: {e}");
                    }
                }
                let _ = client.flush().await;
            })
        };
        let sink = NatsSink::new(tx, self.config.progress_interval);
        let (config, inputs, output) = (
            pipeline::PipelineConfig::from(job.options.clone()),
            Inputs {
                video: paths.video,
                audio: paths.audio,
            },
            paths.output,
        );
        let run_token = token.clone();
        let result = tokio::task::spawn_blocking(move || {
            let progress = Progress::builder()
                .cancel_token(run_token)
                .sink(sink)
                .start();
            let phase = progress.phase("Lip sync", None, "frames");
            let result = pipeline::run(&config, &inputs, &output, &phase);
            match &result {
                Ok(_) => phase.finish(),
                Err(e) => phase.fail(e),
            }
            drop(phase);
            progress.shutdown();
            result
        })
        .await
        .unwrap_or_else(|_| {
            Err(PipelineError::Stage {
                stage: "worker".into(),
                message: "the pipeline thread panicked".into(),
            })
        });
        watcher.abort();
        heartbeat.abort();
        // Every progress event is out before the result is published.
        let _ = tokio::time::timeout(Duration::from_secs(10), publisher).await;
        (result, user_cancel.load(Ordering::Acquire))
    }

    /// Whether a cancel request for job `id` is stored.
    async fn cancel_requested(&self, id: &str) -> bool {
        self.events
            .get_last_raw_message_by_subject(&names::cancel_subject(id))
            .await
            .is_ok()
    }

    async fn stored_result(&self, id: &str) -> Option<JobResult> {
        let message = self
            .events
            .get_last_raw_message_by_subject(&names::result_subject(id))
            .await
            .ok()?;
        json(&message.payload, String::new).ok()
    }

    /// Publishes `result` and waits for the stream to store it, retrying for about a minute
    /// (a server restart). Returns whether it was stored.
    async fn publish_result(&self, result: &JobResult) -> bool {
        let payload = serde_json::to_vec(result).expect("a result serialises");
        let subject = names::result_subject(&result.job);
        self.publish_stored(
            &subject,
            payload,
            &format!("the result of job {}", result.job),
        )
        .await
    }

    async fn publish_stored(&self, subject: &str, payload: Vec<u8>, what: &str) -> bool {
        let payload = bytes::Bytes::from(payload);
        for attempt in 1..=60 {
            let stored = async {
                self.js
                    .publish(subject.to_string(), payload.clone())
                    .await
                    .text()?
                    .await
                    .text()
            }
            .await;
            match stored {
                Ok(_) => return true,
                Err(e) => {
                    tracing::warn!(target: TARGET, "cannot store {what} (attempt {attempt}): {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        false
    }

    /// Acknowledges and waits for the server to confirm, retrying a few times. A lost
    /// acknowledgement only means a duplicate delivery, which the stored result absorbs.
    async fn ack(&self, message: &jetstream::Message, id: &str) {
        for attempt in 1..=10 {
            match message.double_ack().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(target: TARGET, "cannot acknowledge job {id} (attempt {attempt}): {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn retry(&self, message: &jetstream::Message, id: &str, delay: Duration) -> Handled {
        if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
            tracing::warn!(target: TARGET, "cannot hand job {id} back (it returns after ack_wait): {e}");
        }
        Handled::Retry
    }

    /// Writes the dead letter and the job's `dead` result, then terminates the delivery.
    async fn bury(
        &self,
        message: &jetstream::Message,
        id: &str,
        job: Option<Job>,
        payload: Option<String>,
        error: String,
        deliveries: u64,
    ) {
        tracing::warn!(target: TARGET, "job {id} is dead after {deliveries} deliveries: {error}");
        let letter = DeadLetter {
            id: id.into(),
            job,
            payload,
            error: error.clone(),
            deliveries,
            worker: self.config.name.clone(),
        };
        let letter = serde_json::to_vec(&letter).expect("a dead letter serialises");
        if !self
            .publish_stored(
                &names::dead_subject(id),
                letter,
                &format!("the dead letter of job {id}"),
            )
            .await
        {
            let _ = message
                .ack_with(AckKind::Nak(Some(self.config.retry_delay)))
                .await;
            return;
        }
        if id != "unknown" {
            let result = JobResult {
                job: id.into(),
                outcome: JobOutcome::Dead,
                error: Some(error),
                output: None,
                frames: None,
                delivery: deliveries,
                worker: self.config.name.clone(),
                elapsed: 0.0,
            };
            self.publish_result(&result).await;
        }
        if let Err(e) = message.ack_with(AckKind::Term).await {
            tracing::warn!(target: TARGET, "cannot terminate job {id}: {e}");
        }
    }
}
