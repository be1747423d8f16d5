//! The connection, the streams, and everything but the worker loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use progress_core::{Control, Event, ProgressSink};
use tokio::time::Instant;

use crate::connection::NatsConfig;
use crate::job::{DeadLetter, Job, JobResult};
use crate::names::{self, EVENTS_STREAM, JOBS_STREAM, JOBS_SUBJECT};
use crate::{QueueError, Text};

/// How long one request to the server may take before it counts as failed.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the NATS server with JetStream, and the small runtime driving it.
///
/// [`connect`](Self::connect) creates the streams when they do not exist yet; the workers'
/// consumer is created by the first worker (it carries the workers' `ack_wait`).
#[derive(Debug)]
pub struct Queue {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    /// The URL without credentials.
    url: String,
    /// The server's "Permissions Violation" errors not yet reported (they arrive
    /// asynchronously, not as the answer to the publish that caused them).
    pub(crate) denials: Denials,
}

/// The latest permission errors the server sent, newest last (at most 16).
#[derive(Debug, Clone, Default)]
pub(crate) struct Denials(Arc<Mutex<Vec<String>>>);

impl Denials {
    fn push(&self, message: String) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == 16 {
            list.remove(0);
        }
        list.push(message);
    }

    /// Takes the first denial that names `subject` (with its quotes, as the server writes
    /// it), dropping it and every earlier one.
    pub(crate) fn take(&self, subject: &str) -> Option<String> {
        let quoted = format!("\"{subject}\"");
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = list.iter().position(|m| m.contains(&quoted))?;
        let found = list[at].clone();
        list.drain(..=at);
        Some(found)
    }
}

/// How [`Queue::watch`] ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WatchEnd {
    /// The job's final result arrived.
    Finished(JobResult),
    /// The sink returned [`Control::Cancel`]: the watch stopped (the job goes on).
    Stopped,
}

impl Queue {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`, or `nats://user:password@host`)
    /// with no other credentials and no TLS settings, and makes sure the streams exist. See
    /// [`connect_with`](Self::connect_with) for credentials and TLS.
    pub fn connect(url: &str) -> Result<Self, QueueError> {
        Self::connect_with(&NatsConfig {
            url: url.into(),
            ..NatsConfig::default()
        })
    }

    /// Connects as `config` says (URL, credentials, TLS) and makes sure the streams exist.
    pub fn connect_with(config: &NatsConfig) -> Result<Self, QueueError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("facesync-queue")
            .enable_all()
            .build()
            .map_err(QueueError::Runtime)?;
        let shown = config.display_url();
        let denials = Denials::default();
        let client = rt.block_on(async {
            let (options, url) = config.client_options().await?;
            let on_event = denials.clone();
            options
                .name("facesync")
                .connection_timeout(Duration::from_secs(5))
                .request_timeout(Some(REQUEST_TIMEOUT))
                .event_callback(move |event| {
                    let denials = on_event.clone();
                    async move {
                        match event {
                            async_nats::Event::ServerError(async_nats::ServerError::Other(m))
                                if m.starts_with("Permissions Violation") =>
                            {
                                tracing::warn!(target: "facesync::queue", "nats server: {m}");
                                denials.push(m);
                            }
                            event => {
                                tracing::info!(target: "facesync::queue", "nats connection: {event}");
                            }
                        }
                    }
                })
                .connect(url)
                .await
                .map_err(|e| connect_error(&shown, &e))
        })?;
        // The context spawns its acknowledgement task: inside the runtime.
        let js = rt.block_on(async { jetstream::new(client.clone()) });
        let queue = Self {
            rt,
            client,
            js,
            url: shown,
            denials,
        };
        queue
            .rt
            .block_on(ensure_streams(&queue.js))
            .map_err(|e| queue.denied_instead(e))?;
        Ok(queue)
    }

    /// `error`, or the permission error the server sent meanwhile (it explains the failure:
    /// a denied request is dropped by the server and only times out here).
    pub(crate) fn denied_instead(&self, error: QueueError) -> QueueError {
        let what = match &error {
            QueueError::Nats { what, .. } => what.clone(),
            _ => return error,
        };
        let list = self.denials.0.lock().map(|l| l.last().cloned());
        match list.ok().flatten() {
            Some(message) => QueueError::PermissionDenied { what, message },
            None => error,
        }
    }

    /// Fails with [`QueueError::PermissionDenied`] when the server refused a publish to
    /// `subject`: round-trips to the server first, so that its error has arrived, and gives
    /// the connection's event task a few milliseconds to record it.
    async fn check_published(&self, subject: &str, what: &str) -> Result<(), QueueError> {
        self.client
            .flush()
            .await
            .text()
            .map_err(QueueError::nats(what))?;
        for _ in 0..5 {
            if let Some(message) = self.denials.take(subject) {
                return Err(QueueError::PermissionDenied {
                    what: what.into(),
                    message,
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// The stream's acknowledgement of a publish to `subject`; a denial the server sent
    /// meanwhile explains a missing one.
    async fn stored(
        &self,
        ack: jetstream::context::PublishAckFuture,
        subject: &str,
        what: &str,
    ) -> Result<(), QueueError> {
        match ack.await {
            Ok(_) => Ok(()),
            Err(e) => Err(match self.denials.take(subject) {
                Some(message) => QueueError::PermissionDenied {
                    what: what.into(),
                    message,
                },
                None => QueueError::Nats {
                    what: what.into(),
                    message: e.to_string(),
                },
            }),
        }
    }

    /// The server's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Puts `job` on the queue. Submitting the same id again within two minutes is a no-op
    /// (JetStream's duplicate window).
    pub fn submit(&self, job: &Job) -> Result<(), QueueError> {
        job.validate()?;
        let payload = serde_json::to_vec(job).map_err(|source| QueueError::Json {
            what: format!("job {}", job.id),
            source,
        })?;
        let what = format!("submitting job {}", job.id);
        self.rt.block_on(async {
            let publish = jetstream::message::PublishMessage::build()
                .message_id(job.id.as_str())
                .payload(payload.into());
            let ack = self
                .js
                .send_publish(JOBS_SUBJECT, publish)
                .await
                .text()
                .map_err(QueueError::nats(&what))?;
            self.check_published(JOBS_SUBJECT, &what).await?;
            self.stored(ack, JOBS_SUBJECT, &what).await
        })
    }

    /// Asks for job `id` to be cancelled, whether it is running or still waiting.
    pub fn cancel(&self, id: &str) -> Result<(), QueueError> {
        check_id(id)?;
        let what = format!("cancelling job {id}");
        let subject = names::cancel_subject(id);
        self.rt.block_on(async {
            let ack = self
                .js
                .publish(subject.clone(), "cancel".into())
                .await
                .text()
                .map_err(QueueError::nats(&what))?;
            self.check_published(&subject, &what).await?;
            self.stored(ack, &subject, &what).await
        })
    }

    /// Replays job `id`'s progress events from its start into `sink` (calling `flush` after
    /// each), then follows them live until the job's result arrives or `timeout` passes. A
    /// job delivered several times (a worker died) shows each attempt's events in turn.
    pub fn watch(
        &self,
        id: &str,
        sink: &mut dyn ProgressSink,
        timeout: Option<Duration>,
    ) -> Result<WatchEnd, QueueError> {
        check_id(id)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let watched = self.rt.block_on(async {
            let mut messages =
                ordered_messages(&self.js, EVENTS_STREAM, names::job_events_filter(id)).await?;
            let result_subject = names::result_subject(id);
            let progress_subject = names::progress_subject(id);
            loop {
                let message = next_before(&mut messages, deadline, timeout, || {
                    format!("waiting for the result of job {id}")
                })
                .await?;
                let subject = message.subject.as_str();
                if subject == result_subject {
                    return Ok(WatchEnd::Finished(json(&message.payload, || {
                        format!("result of job {id}")
                    })?));
                }
                if subject == progress_subject {
                    // An event of a newer schema version than ours is skipped, not fatal.
                    let Ok(event) = serde_json::from_slice::<Event>(&message.payload) else {
                        continue;
                    };
                    let control = sink.handle(&event);
                    sink.flush();
                    if control == Control::Cancel {
                        return Ok(WatchEnd::Stopped);
                    }
                }
            }
        });
        watched.map_err(|e| self.denied_instead(e))
    }

    /// Waits for job `id`'s result (at once if it is finished already).
    pub fn wait_result(&self, id: &str, timeout: Duration) -> Result<JobResult, QueueError> {
        let mut ignore = |_: &Event| Control::Continue;
        match self.watch(id, &mut ignore, Some(timeout))? {
            WatchEnd::Finished(result) => Ok(result),
            WatchEnd::Stopped => unreachable!("the sink never stops"),
        }
    }

    /// Every result stored for job `id`, oldest first: one, once the job is finished.
    pub fn results(&self, id: &str) -> Result<Vec<JobResult>, QueueError> {
        check_id(id)?;
        let subject = names::result_subject(id);
        self.rt
            .block_on(stored(&self.js, EVENTS_STREAM, subject))
            .map_err(|e| self.denied_instead(e))
    }

    /// Every dead letter stored, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        self.rt
            .block_on(stored(&self.js, EVENTS_STREAM, names::DEAD_SUBJECTS.into()))
            .map_err(|e| self.denied_instead(e))
    }

    /// How many jobs wait in the queue (submitted, not yet acknowledged by a worker).
    pub fn pending_jobs(&self) -> Result<u64, QueueError> {
        self.rt.block_on(async {
            let mut stream = self
                .js
                .get_stream(JOBS_STREAM)
                .await
                .text()
                .map_err(QueueError::nats("reading the jobs stream"))?;
            let info = stream
                .info()
                .await
                .text()
                .map_err(QueueError::nats("reading the jobs stream"))?;
            Ok(info.state.messages)
        })
    }
}

/// A job id given to watch, cancel or results must be one subject token: `*` or `>` would
/// address other jobs.
fn check_id(id: &str) -> Result<(), QueueError> {
    if names::valid_job_id(id) {
        Ok(())
    } else {
        Err(QueueError::InvalidJob(format!(
            "job id {id:?}: expected 1 to 64 ASCII letters, digits, '-' or '_'"
        )))
    }
}

/// Creates the two streams unless they exist.
pub(crate) async fn ensure_streams(js: &jetstream::Context) -> Result<(), QueueError> {
    let configs = [
        stream::Config {
            name: JOBS_STREAM.into(),
            subjects: vec![JOBS_SUBJECT.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: EVENTS_STREAM.into(),
            subjects: vec![names::EVENTS_SUBJECTS.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: names::EVENTS_MAX_AGE,
            ..Default::default()
        },
    ];
    for config in configs {
        let what = format!("creating the stream {}", config.name);
        js.get_or_create_stream(config)
            .await
            .text()
            .map_err(QueueError::nats(what))?;
    }
    Ok(())
}

type Messages = consumer::pull::Ordered;

/// An ordered (ephemeral, gap-free, reconnecting) consumer of `filter` in `stream`, from the
/// stream's start.
async fn ordered_messages(
    js: &jetstream::Context,
    stream: &str,
    filter: String,
) -> Result<Messages, QueueError> {
    let what = format!("reading {filter} from the stream {stream}");
    let stream = js
        .get_stream(stream)
        .await
        .text()
        .map_err(QueueError::nats(&what))?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .text()
        .map_err(QueueError::nats(&what))?;
    consumer
        .messages()
        .await
        .text()
        .map_err(QueueError::nats(&what))
}

/// The next message, or a timeout error once `deadline` passes.
async fn next_before(
    messages: &mut Messages,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    what: impl Fn() -> String,
) -> Result<jetstream::Message, QueueError> {
    let next = async {
        loop {
            match messages.next().await {
                Some(Ok(message)) => return Ok(message),
                // Transient (a reconnect, a missed heartbeat): the ordered consumer recovers.
                Some(Err(e)) => {
                    tracing::debug!(target: "facesync::queue", "{}: {e}", what());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => {
                    return Err(QueueError::Nats {
                        what: what(),
                        message: "the consumer ended".into(),
                    });
                }
            }
        }
    };
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, next)
            .await
            .unwrap_or_else(|_| {
                Err(QueueError::Timeout {
                    what: what(),
                    secs: timeout.unwrap_or_default().as_secs_f64(),
                })
            }),
        None => next.await,
    }
}

/// Every message on `filter` stored in `stream`, parsed.
async fn stored<T: serde::de::DeserializeOwned>(
    js: &jetstream::Context,
    stream_name: &str,
    filter: String,
) -> Result<Vec<T>, QueueError> {
    let what = format!("reading {filter} from the stream {stream_name}");
    let consumer = js
        .get_stream(stream_name)
        .await
        .text()
        .map_err(QueueError::nats(&what))?
        .create_consumer(consumer::pull::Config {
            filter_subject: filter.clone(),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .text()
        .map_err(QueueError::nats(&what))?;
    let mut items = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .messages()
            .await
            .text()
            .map_err(QueueError::nats(&what))?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message.text().map_err(QueueError::nats(&what))?;
            items.push(json(&message.payload, || what.clone())?);
            got += 1;
        }
        if got == 0 {
            return Ok(items);
        }
    }
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, QueueError> {
    serde_json::from_slice(payload).map_err(|source| QueueError::Json {
        what: what(),
        source,
    })
}

/// The connection error, telling refused credentials apart.
fn connect_error(url: &str, e: &async_nats::ConnectError) -> QueueError {
    use async_nats::ConnectErrorKind as Kind;
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    match e.kind() {
        Kind::AuthorizationViolation | Kind::Authentication => QueueError::NotAuthorized {
            url: url.into(),
            message,
        },
        _ => QueueError::Connect {
            url: url.into(),
            message,
        },
    }
}
