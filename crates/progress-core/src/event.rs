//! The events sinks receive, and their JSON form.
//!
//! # JSON schema, version 1
//!
//! Every event serialises (serde, e.g. `serde_json`) to one object with a `"type"` tag in
//! snake case; times are seconds as floats since the run started (`t`), identifiers are
//! integers. [`SCHEMA_VERSION`] is carried by `run_started`; a consumer should check it.
//! Fields may be added in later versions of the same schema number; none are removed or renamed
//! without bumping it. Absent values are `null`.
//!
//! | `type` | fields |
//! | --- | --- |
//! | `run_started` | `schema`, `t`, `tick_ms` |
//! | `phase_started` | `t`, `id`, `parent`, `name`, `total`, `unit`, `weight` |
//! | `progress` | `t`, `id`, `pos`, `total`, `rate` (units/s), `eta` (s), `message` |
//! | `run_progress` | `t`, `fraction` (0..1), `eta` (s) |
//! | `message` | `t`, `phase`, `level` (`debug`/`info`/`warn`/`error`), `text` |
//! | `preview` | `t`, `phase`, `frame`, `width`, `height`, `format` (`rgb8`/`png`), `data` (base64) |
//! | a record's kind | `t`, `phase`, then the record's own fields in order (see [`crate::record`]) |
//! | `phase_finished` | `t`, `id`, `outcome` (`completed`/`failed`/`cancelled`/`abandoned`), `error`, `pos`, `total`, `elapsed` |
//! | `run_finished` | `t`, `summary`: `elapsed`, `cancelled`, `phases`, `completed`, `failed`, `cancelled_phases`, `abandoned`, `dropped_previews`, `sink_failures` |
//!
//! Example line: `{"type":"progress","t":1.2,"id":3,"pos":48,"total":100,"rate":40.1,"eta":1.3,"message":null}`
//!
//! Records are the event types that the work defines (progress-core knows none of them). The
//! one facesync sends is the face stage's per-frame `face_status` (`face_proc::FaceStatus`):
//! `t`, `phase`, `frame`, `faces`, `action` (`aligned`/`passed_through`/`interpolated`/`failed`),
//! `mouth_open` (inner-lip gap / mouth width, from the face mesh), `presence` (the mesh's
//! face-presence score, 0..1), `reason` (why there is no face: `not_detected`/`low_presence`).

use serde::{Deserialize, Serialize};

pub use crate::record::Record;

/// The version of the JSON event schema described in this module.
pub const SCHEMA_VERSION: u32 = 1;

/// Identifies a phase within one run. Assigned in creation order, starting at 1.
pub type PhaseId = u64;

/// Something that happened in a run, as every sink sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The dispatcher started. Always the first event.
    RunStarted {
        /// [`SCHEMA_VERSION`].
        schema: u32,
        /// Seconds since the run started (0).
        t: f64,
        /// The sampling period, in milliseconds.
        tick_ms: u64,
    },
    /// A phase was created.
    PhaseStarted {
        /// Seconds since the run started.
        t: f64,
        /// The phase.
        id: PhaseId,
        /// The parent phase, `None` for a top-level phase.
        parent: Option<PhaseId>,
        /// Human-readable name, e.g. `Processing faces`.
        name: String,
        /// Number of units of work, if known.
        total: Option<u64>,
        /// What a unit is, e.g. `frames`.
        unit: String,
        /// Share of its parent's (or the run's) work, relative to its siblings.
        weight: f64,
    },
    /// The latest counters of a phase that changed since the previous tick.
    Progress {
        /// Seconds since the run started.
        t: f64,
        /// The phase.
        id: PhaseId,
        /// Units done.
        pos: u64,
        /// Units in all, if known.
        total: Option<u64>,
        /// Smoothed units per second; `None` until there is a rate.
        rate: Option<f64>,
        /// Seconds left; `None` while unknown.
        eta: Option<f64>,
        /// The phase's latest status text, if any.
        message: Option<String>,
    },
    /// The whole run's completion, from the phase tree and its weights.
    RunProgress {
        /// Seconds since the run started.
        t: f64,
        /// Weighted fraction done, 0 to 1.
        fraction: f64,
        /// Seconds left for the whole run; `None` while unknown.
        eta: Option<f64>,
    },
    /// A log-like message from the work (or from the dispatcher about a sink).
    Message {
        /// Seconds since the run started.
        t: f64,
        /// The phase it concerns, if any.
        phase: Option<PhaseId>,
        /// Severity.
        level: Level,
        /// The text.
        text: String,
    },
    /// A preview image of the work in progress. May be dropped under load (counted).
    Preview {
        /// Seconds since the run started.
        t: f64,
        /// The phase it comes from.
        phase: PhaseId,
        /// Frame index in the video.
        frame: u64,
        /// The image.
        #[serde(flatten)]
        image: PreviewImage,
    },
    /// A phase ended. Carries its final position: the last word on the phase.
    PhaseFinished {
        /// Seconds since the run started.
        t: f64,
        /// The phase.
        id: PhaseId,
        /// How it ended.
        outcome: Outcome,
        /// The error text for [`Outcome::Failed`].
        error: Option<String>,
        /// Final units done.
        pos: u64,
        /// Final total, if known.
        total: Option<u64>,
        /// Seconds from start to finish of the phase.
        elapsed: f64,
    },
    /// The dispatcher is shutting down. Always the last event.
    RunFinished {
        /// Seconds since the run started.
        t: f64,
        /// What happened in the run.
        summary: RunSummary,
    },
    /// A record the work defines (see [`crate::record`]), e.g. the face stage's
    /// `face_status`. In JSON its `type` is the record's kind.
    #[serde(untagged)]
    Record(Record),
}

impl Event {
    /// Seconds since the run started, for any event.
    pub fn time(&self) -> f64 {
        match self {
            Event::RunStarted { t, .. }
            | Event::PhaseStarted { t, .. }
            | Event::Progress { t, .. }
            | Event::RunProgress { t, .. }
            | Event::Message { t, .. }
            | Event::Preview { t, .. }
            | Event::PhaseFinished { t, .. }
            | Event::RunFinished { t, .. }
            | Event::Record(Record { t, .. }) => *t,
        }
    }
}

/// Severity of a [`Event::Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Detail for developers.
    Debug,
    /// Normal information.
    Info,
    /// Something worth attention; the run goes on.
    Warn,
    /// Something failed.
    Error,
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `finish()` was called.
    Completed,
    /// `fail(error)` was called.
    Failed,
    /// The run's cancel token was set before the phase ended.
    Cancelled,
    /// Every handle was dropped without `finish()` or `fail()`.
    Abandoned,
}

/// Pixel encoding of a [`PreviewImage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// Raw RGB8, row-major, `width * height * 3` bytes.
    Rgb8,
    /// A PNG file's bytes.
    Png,
}

/// A preview image. In JSON, `data` is base64 (standard alphabet, padded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Encoding of `data`.
    pub format: ImageFormat,
    /// The pixels or file bytes.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// What happened in a run, sent with [`Event::RunFinished`] and returned by
/// [`Progress::shutdown`](crate::Progress::shutdown).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Seconds the run lasted.
    pub elapsed: f64,
    /// Whether the run's cancel token was set.
    pub cancelled: bool,
    /// Phases created.
    pub phases: u64,
    /// Phases that completed.
    pub completed: u64,
    /// Phases that failed.
    pub failed: u64,
    /// Phases that ended cancelled.
    pub cancelled_phases: u64,
    /// Phases dropped unfinished.
    pub abandoned: u64,
    /// Previews dropped because a queue was full (the producer's channel or a sink's queue).
    pub dropped_previews: u64,
    /// Sinks disabled because they panicked or stalled.
    pub sink_failures: u64,
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
