//! Progress reporting that never blocks the work, and work that never waits on the UI.
//!
//! Console progress bars drawn from a compute loop (tqdm, indicatif) cost tens of nanoseconds
//! per update, render on the worker thread, flood or freeze a host UI and cannot cancel
//! anything. This crate splits the two sides:
//!
//! - **Producers** hold [`Phase`] handles. [`Phase::inc`] is one relaxed atomic add: no lock,
//!   channel, clock read, syscall or allocation. Structural events (phase start and finish,
//!   messages, previews, and records: typed events the work defines, such as a per-frame face
//!   status) go through a bounded channel. Several threads
//!   on one phase each take a [`LocalCounter`] ([`Phase::local`]): a counter on a cache line
//!   of its own, so that they do not fight over one line; the dispatcher sums them.
//! - **A dispatcher thread** samples every phase's counters on a fixed tick (10 Hz by default),
//!   emits [`Event::Progress`] only for phases that changed, with a smoothed rate and ETA per
//!   phase and a whole-run fraction and ETA from the phase tree, and fans everything out.
//! - **Sinks** ([`ProgressSink`]) each run on their own thread behind their own queue: a slow
//!   sink only delays itself (its progress snapshots coalesce, latest wins; structural events
//!   are kept; excess previews are dropped and counted), a sink that panics or stalls (one call
//!   longer than [`ProgressBuilder::sink_stall_timeout`]) is disabled and reported, and the
//!   final state of every phase reaches every live sink.
//! - **Cancellation** ([`CancelToken`]) is a shared flag settable from any thread, a signal
//!   handler, or a sink returning [`Control::Cancel`]; the work polls it between batches with
//!   [`Phase::check`].
//! - **Records** ([`record`]): the crate knows phases, counters, cancellation, messages and
//!   previews, and nothing about any one job. What only one job reports (the face stage's
//!   per-frame face status) is a record type that the job's crate defines ([`RecordType`]: a
//!   kind and named, typed values) and sends with [`Phase::record`]; every sink renders it
//!   without knowing the type, and the JSON schema stays one event per line.
//!
//! This crate has no terminal, GPU or logging-backend dependency (it logs sink panics through
//! the `tracing` facade only). Ready-made sinks (console, log, JSON lines, channel, callback,
//! ComfyUI) live in the `sinks` crate.
//!
//! # Rate and ETA
//! A time-weighted exponential moving average (time constant 3 s, configurable with
//! [`ProgressBuilder::smoothing`]) of the rate, sampled on the dispatcher's tick rather than on
//! each increment, normalised for start-up; the rate decays while a phase stalls and is `None`
//! until the first progress. The whole-run fraction is the weighted mean of the top-level phases
//! (a phase without a total counts as the weighted mean of its children; weights default to 1,
//! see [`Phase::set_weight`]); the run ETA comes from the same estimator applied to that
//! fraction. Create all top-level phases up front, with their totals, for a meaningful run ETA.
//!
//! # Example
//! ```
//! use progress_core::{Control, Event, Progress, ProgressIterExt};
//!
//! let progress = Progress::builder()
//!     .sink(|event: &Event| {
//!         if let Event::PhaseFinished { pos, .. } = event {
//!             assert_eq!(*pos, 100);
//!         }
//!         Control::Continue
//!     })
//!     .start();
//! let phase = progress.phase("Processing faces", Some(100), "frames");
//! for _frame in (0..100).progress(&phase) {
//!     // ... work; between batches: phase.check()?
//! }
//! phase.finish();
//! let summary = progress.shutdown();
//! assert_eq!(summary.completed, 1);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cancel;
mod dispatcher;
mod estimate;
pub mod event;
mod phase;
mod queue;
pub mod record;
mod run;
mod sink;
mod worker;

pub use cancel::{CancelToken, Cancelled};
pub use event::{
    Event, ImageFormat, Level, Outcome, PhaseId, PreviewImage, RunSummary, SCHEMA_VERSION,
};
pub use phase::{LocalCounter, Phase, ProgressIter, ProgressIterExt};
pub use record::{Fields, Record, RecordType, Value};
pub use run::{Progress, ProgressBuilder};
pub use sink::{Control, ProgressSink};
