//! The sinks' worker threads: each drains its own queue into its sink.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::cancel::CancelToken;
use crate::event::{Event, Level};
use crate::queue::{Item, Popped, SinkQueue};
use crate::sink::{Control, ProgressSink};

/// One sink's worker: pops its queue and calls the sink, catching panics.
pub(crate) struct Worker {
    /// The sink's index in `queues`.
    pub(crate) index: usize,
    pub(crate) sink: Box<dyn ProgressSink>,
    /// Every sink's queue: a panic is reported to the others.
    pub(crate) queues: Arc<Vec<Arc<SinkQueue>>>,
    pub(crate) cancel: CancelToken,
    /// The run's count of disabled sinks.
    pub(crate) failures: Arc<AtomicU64>,
    /// When the run started.
    pub(crate) start: Instant,
}

impl Worker {
    /// Runs the worker on a thread of its own.
    pub(crate) fn spawn(self) -> JoinHandle<()> {
        let index = self.index;
        std::thread::Builder::new()
            .name(format!("facesync-sink-{index}"))
            .spawn(move || self.run())
            .expect("cannot spawn a progress sink thread")
    }

    fn run(mut self) {
        let queue = Arc::clone(&self.queues[self.index]);
        let mut alive = true;
        while let Some(popped) = queue.pop() {
            if !alive {
                continue; // keep draining so the dispatcher's pushes stay cheap
            }
            let sink = &mut self.sink;
            let result = catch_unwind(AssertUnwindSafe(|| match &popped {
                Popped::Event(event) => sink.handle(event),
                Popped::Flush => {
                    sink.flush();
                    Control::Continue
                }
            }));
            match result {
                Ok(Control::Continue) => {}
                Ok(Control::Cancel) => self.cancel.cancel(),
                Err(panic) => {
                    alive = false;
                    self.report_panic(panic);
                }
            }
        }
        if alive && !queue.is_stalled() {
            let sink = &mut self.sink;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| sink.flush())) {
                self.report_panic(panic);
            }
        }
    }

    fn report_panic(&self, panic: Box<dyn Any + Send>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let name = self.sink.name();
        tracing::warn!(
            target: "facesync::progress",
            sink = %name,
            panic = %what,
            "progress sink panicked and was disabled; the run goes on"
        );
        let event = Arc::new(Event::Message {
            t: self.start.elapsed().as_secs_f64(),
            phase: None,
            level: Level::Warn,
            text: format!("progress sink {name} panicked and was disabled: {what}"),
        });
        for (i, q) in self.queues.iter().enumerate() {
            if i != self.index {
                q.push(Item::Event(Arc::clone(&event)));
            }
        }
    }
}
