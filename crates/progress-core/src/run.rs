//! The run: its builder, and the handle that owns the dispatcher thread.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cancel::CancelToken;
use crate::dispatcher::{Dispatcher, Sinks, Timing};
use crate::estimate::DEFAULT_TAU_SECS;
use crate::event::RunSummary;
use crate::phase::{Msg, Phase, RunShared};
use crate::queue::SinkQueue;
use crate::sink::ProgressSink;
use crate::worker::Worker;

/// Configures and starts a [`Progress`] run.
#[derive(Debug)]
pub struct ProgressBuilder {
    timing: Timing,
    channel_capacity: usize,
    sink_preview_capacity: usize,
    cancel: CancelToken,
    sinks: Vec<SinkBox>,
}

struct SinkBox(Box<dyn ProgressSink>);

impl std::fmt::Debug for SinkBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.name())
    }
}

impl Default for ProgressBuilder {
    fn default() -> Self {
        Self {
            timing: Timing {
                tick: Duration::from_millis(100),
                tau: DEFAULT_TAU_SECS,
                stall: Duration::from_secs(10),
            },
            channel_capacity: 1024,
            sink_preview_capacity: 4,
            cancel: CancelToken::new(),
            sinks: Vec::new(),
        }
    }
}

impl ProgressBuilder {
    /// The sampling period (default 100 ms, i.e. 10 Hz). At least 1 ms.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.timing.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// Capacity of the producers' structural channel (default 1024). When full, previews are
    /// dropped and other events wait for room.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity.max(1);
        self
    }

    /// How many previews may wait in one sink's queue before newer ones are dropped (default 4).
    pub fn sink_preview_capacity(mut self, capacity: usize) -> Self {
        self.sink_preview_capacity = capacity;
        self
    }

    /// Time constant of the rate estimator, in seconds (default 3).
    pub fn smoothing(mut self, tau_secs: f64) -> Self {
        if tau_secs.is_finite() && tau_secs > 0.0 {
            self.timing.tau = tau_secs;
        }
        self
    }

    /// How long one call of a sink may take before the sink counts as stalled (default 10 s).
    ///
    /// A stalled sink (blocked on a full pipe, a paused terminal, a GUI channel nobody drains)
    /// is disabled like a panicking one: its queue is dropped, the other sinks get a warning
    /// message, the run summary counts it in `sink_failures`, and `shutdown` stops waiting for
    /// it. Its thread is not joined but detached: it ends on its own once the call returns.
    pub fn sink_stall_timeout(mut self, timeout: Duration) -> Self {
        self.timing.stall = timeout;
        self
    }

    /// The run's cancel token (default: a new one).
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// Adds a sink.
    pub fn sink(mut self, sink: impl ProgressSink) -> Self {
        self.sinks.push(SinkBox(Box::new(sink)));
        self
    }

    /// Adds a boxed sink.
    pub fn boxed_sink(mut self, sink: Box<dyn ProgressSink>) -> Self {
        self.sinks.push(SinkBox(sink));
        self
    }

    /// Starts the dispatcher and one worker thread per sink.
    pub fn start(self) -> Progress {
        let (tx, rx) = flume::bounded(self.channel_capacity);
        let shared = Arc::new(RunShared::new(Some(tx), self.cancel.clone()));
        let queues: Arc<Vec<Arc<SinkQueue>>> = Arc::new(
            self.sinks
                .iter()
                .map(|sink| Arc::new(SinkQueue::new(self.sink_preview_capacity, sink.0.name())))
                .collect(),
        );
        let sink_failures = Arc::new(AtomicU64::new(0));
        let workers = self
            .sinks
            .into_iter()
            .enumerate()
            .map(|(index, sink)| {
                Worker {
                    index,
                    sink: sink.0,
                    queues: Arc::clone(&queues),
                    cancel: self.cancel.clone(),
                    failures: Arc::clone(&sink_failures),
                    start: shared.start,
                }
                .spawn()
            })
            .collect();
        let sinks = Sinks {
            queues,
            workers,
            failures: sink_failures,
        };
        let thread = Dispatcher::new(rx, Arc::clone(&shared), sinks, self.timing).spawn();
        Progress {
            shared,
            thread: Some(thread),
        }
    }
}

/// A progress run: the dispatcher thread, its sinks, and the root of the phase tree.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) ends every phase still open (as
/// abandoned, or cancelled if the token is set), delivers the final state to every live sink,
/// sends `run_finished`, and joins every thread it started.
#[derive(Debug)]
pub struct Progress {
    shared: Arc<RunShared>,
    thread: Option<JoinHandle<RunSummary>>,
}

impl Progress {
    /// Configures a run.
    pub fn builder() -> ProgressBuilder {
        ProgressBuilder::default()
    }

    /// A run with no sinks and default settings (counts and cancellation only).
    pub fn new() -> Self {
        Self::builder().start()
    }

    /// Starts a top-level phase.
    pub fn phase(
        &self,
        name: impl Into<String>,
        total: Option<u64>,
        unit: impl Into<String>,
    ) -> Phase {
        self.shared
            .start_phase(None, name.into(), total, unit.into())
    }

    /// The run's cancel token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.shared.cancel
    }

    /// Flushes every sink, joins all threads and returns the run's summary.
    pub fn shutdown(mut self) -> RunSummary {
        self.stop()
    }

    fn stop(&mut self) -> RunSummary {
        let Some(thread) = self.thread.take() else {
            return RunSummary::default();
        };
        if let Some(tx) = &self.shared.tx {
            let _ = tx.send(Msg::Shutdown);
        }
        thread.join().unwrap_or_default()
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}
