//! Ready-made progress sinks for [`progress_core`]: console, log, callback, JSON lines, channel
//! and ComfyUI.
//!
//! progress-core samples the work's counters and hands [`Event`](progress_core::Event)s to
//! sinks, each on its own thread behind its own queue, so no sink here can slow the work:
//! these types only turn events into output. Pick by who is watching:
//!
//! | who watches | sink |
//! | --- | --- |
//! | a person at a terminal, or a CI log | [`ConsoleSink::stderr`]: live bars on a terminal, plain lines (start, finish, ≤ 1/s per phase) otherwise; `FACESYNC_PROGRESS=bars\|plain\|off` overrides |
//! | your logs (fmt or JSON `tracing-subscriber` layers) | [`LogSink`]: target `facesync::progress`, structured fields, rate-limited |
//! | another program reading a file or pipe | [`JsonLinesSink`]: one event per line, progress-core's versioned schema |
//! | a GUI event loop | [`ChannelSink`]: a bounded flume receiver; progress coalesces, structure is never dropped |
//! | your own code (a UI toolkit, a web socket) | [`CallbackSink`]: a closure; return `Control::Cancel` to stop the run |
//!
//! Several sinks can watch one run; each sees every structural event in order, while progress
//! snapshots may be coalesced (latest wins) and previews dropped for a slow sink. Records (event
//! types the work defines, such as the face stage's `face_status`) are rendered without knowing
//! their type: a JSON line like any event, a `DEBUG` log line with their fields.
//!
//! This crate only renders: installing a `tracing` subscriber (where log lines go, colours,
//! filters) is the application's business (the `facesync` command line does it).
//!
//! # Example
//! ```
//! use progress_core::Progress;
//! use sinks::{ConsoleSink, JsonLinesSink, LogSink};
//!
//! let progress = Progress::builder()
//!     .sink(ConsoleSink::stderr()) // bars on a terminal, plain lines in CI logs
//!     .sink(LogSink::new()) // tracing events, target `facesync::progress`
//!     .sink(JsonLinesSink::new(std::io::sink())) // e.g. a file other tools tail
//!     .start();
//! let phase = progress.phase("Processing faces", Some(100), "frames");
//! for _frame in 0..100 {
//!     phase.inc(1); // one relaxed atomic add; the sinks draw on their own threads
//! }
//! phase.finish();
//! assert_eq!(progress.shutdown().completed, 1);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod callback;
mod channel;
mod console;
mod json_lines;
mod log;
mod text;

pub use callback::CallbackSink;
pub use channel::ChannelSink;
pub use console::{ConsoleSink, PROGRESS_ENV};
pub use json_lines::JsonLinesSink;
pub use log::LogSink;
