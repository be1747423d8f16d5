//! facesync on a fleet of machines: lip-sync jobs on a NATS JetStream work queue.
//!
//! Why: a studio queues hundreds of clips; one machine is not enough, and a home-made queue
//! would have to solve delivery, redelivery and persistence again. JetStream already does:
//! jobs wait in a work-queue stream until a worker acknowledges them, a job whose worker dies
//! comes back after the consumer's `ack_wait`, and the streams survive a server restart.
//!
//! - [`Queue::submit`] publishes a [`Job`] (inputs, output, [`RunOptions`]) on
//!   [`names::JOBS_SUBJECT`], deduplicated by its id.
//! - [`Queue::run_worker`] pulls one job at a time from the shared durable consumer and runs
//!   [`pipeline::run`] on a blocking thread; it sends in-progress acks well inside `ack_wait`
//!   while the job runs, acknowledges only after the output is complete (the pipeline writes a
//!   temporary file and renames it) and its result is stored, and naks a failed job for a
//!   retry after a delay. A job that fails on its last allowed delivery goes to the
//!   dead-letter subject `facesync.dead.<job>` with its error and is terminated.
//! - Every job's progress events (progress-core's versioned JSON, as `--progress json`
//!   writes them, snapshots thinned) go to `facesync.progress.<job>`, its final
//!   [`JobResult`] to `facesync.result.<job>`; all are kept in a stream (7 days), so
//!   [`Queue::watch`] replays a job from its start into any [`ProgressSink`].
//! - [`Queue::cancel`] publishes on `facesync.cancel.<job>`: the worker running it fires the
//!   job's [`CancelToken`], the pipeline stops between chunks, the job ends
//!   [`JobOutcome::Cancelled`] with no output. A cancel sent before the job starts counts too.
//! - A job already finished (its result is stored) is acknowledged without running again
//!   when it is delivered twice, e.g. when an acknowledgement was lost in a server restart.
//!
//! The API is synchronous: a [`Queue`] owns a small tokio runtime and the NATS connection,
//! which reconnects by itself. Names of streams, consumer and subjects live in [`names`].
//! Workers report what they do through `tracing` (target `facesync::queue`); nothing prints.
//!
//! ```no_run
//! use facesync_queue::{Job, RunOptions, Queue, WorkerConfig};
//!
//! let queue = Queue::connect("nats://127.0.0.1:4222")?;
//! let job = Job::new("/shared/in.y4m", "/shared/in.wav", "/shared/out.mp4", RunOptions::default());
//! queue.submit(&job)?;
//! // on each worker machine:
//! // queue.run_worker(&WorkerConfig::default(), &progress_core::CancelToken::new())?;
//! let result = queue.wait_result(&job.id, std::time::Duration::from_secs(3600))?;
//! println!("{:?}", result.outcome);
//! # Ok::<(), facesync_queue::QueueError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod connection;
mod job;
pub mod names;
mod roots;
mod sink;
mod worker;

pub use client::{Queue, WatchEnd};
pub use connection::{
    Auth, ClientCert, DEFAULT_URL, NatsConfig, Secret, TlsConfig, env, redact_url,
    url_has_credentials,
};
pub use job::{DeadLetter, JOB_VERSION, Job, JobOutcome, JobResult, MAX_JOB_BYTES};
/// The options a job carries: the pipeline's own ([`RunOptions::validate`] holds every limit).
pub use pipeline::{Backend, LengthPolicy, MAX_CHUNK, MAX_STEPS, NoFacePolicy, RunOptions};
pub use progress_core::{CancelToken, ProgressSink};
pub use roots::{PathPolicy, PathRoots};
pub use worker::{WorkerConfig, WorkerStats};

/// `crates/queue/fleet.conf`: the secure fleet set-up the guide describes (an account, a role
/// per kind of client with its subject permissions, TLS), for a server's `-c`. Its `$NAME`s:
/// `FACESYNC_WORKER_NKEY` (the workers' public NKey), `FACESYNC_SUBMITTER_PASSWORD`,
/// `FACESYNC_WATCHER_PASSWORD`, `FACESYNC_TLS_CERT` and `FACESYNC_TLS_KEY` (the server's PEM
/// files).
pub const FLEET_CONF: &str = include_str!("../fleet.conf");

/// What went wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The NATS server cannot be reached.
    #[error("cannot connect to the NATS server at {url}: {message}")]
    Connect {
        /// The server's URL.
        url: String,
        /// The client's error.
        message: String,
    },
    /// The server refused this client's credentials (or their absence).
    #[error(
        "the NATS server at {url} refused the connection: {message} (check the credentials: \
         FACESYNC_NATS_USER and FACESYNC_NATS_PASSWORD_FILE, FACESYNC_NATS_TOKEN_FILE, \
         FACESYNC_NATS_NKEY_FILE or FACESYNC_NATS_CREDS)"
    )]
    NotAuthorized {
        /// The server's URL, without credentials.
        url: String,
        /// The client's error.
        message: String,
    },
    /// The server denied a publish or subscription: this user lacks the permission.
    #[error("{what}: the server denied it ({message}): this NATS user lacks the permission")]
    PermissionDenied {
        /// What was being done.
        what: String,
        /// The server's message.
        message: String,
    },
    /// The connection settings are wrong (a file missing, credentials set twice…).
    #[error("NATS connection settings: {0}")]
    Settings(String),
    /// The worker's path roots are wrong or missing.
    #[error("worker path roots: {0}")]
    PathRoots(String),
    /// A JetStream or NATS request failed.
    #[error("{what}: {message}")]
    Nats {
        /// What was being done.
        what: String,
        /// The client's error.
        message: String,
    },
    /// Nothing came in time.
    #[error("timed out after {secs:.1} s {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        secs: f64,
    },
    /// A message was not the JSON expected.
    #[error("{what}: {source}")]
    Json {
        /// Which message.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The job cannot be run.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// The job's options are out of their limits ([`RunOptions::validate`]): typed, so that a
    /// submitter can tell which option ([`pipeline::OptionsError::option`]).
    #[error("invalid job: job {job}: {source}")]
    InvalidOptions {
        /// The job's id.
        job: String,
        /// Which option, and why.
        #[source]
        source: pipeline::OptionsError,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl QueueError {
    pub(crate) fn nats(what: impl Into<String>) -> impl FnOnce(String) -> Self {
        let what = what.into();
        move |message| Self::Nats { what, message }
    }
}

/// `Result<T, E: Display>` → `Result<T, String>`, for [`QueueError::nats`].
pub(crate) trait Text<T> {
    fn text(self) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Text<T> for Result<T, E> {
    fn text(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}
