//! Progress as `tracing` events.

use progress_core::{Control, Event, ImageFormat, Level, Outcome, ProgressSink};
use tracing::{debug, error, info, trace, warn};

use crate::text::{self, PacedPhases, TARGET};

/// Turns events into `tracing` events with target `facesync::progress` and structured fields.
///
/// Works with any subscriber, e.g. `tracing-subscriber`'s fmt or JSON layers. Levels:
/// run and phase start/finish and progress lines are `INFO` (a phase that fails is `ERROR`, one
/// cancelled or abandoned `WARN`), messages keep their level, records (e.g. the face stage's
/// face status) are `DEBUG`, previews and the whole-run fraction are `TRACE`/`DEBUG`.
/// Progress lines are rate-limited per phase by event time (one per second by default).
///
/// Fields: `phase` (id), `parent`, `name`, `total`, `unit`, `pos`, `rate` (units/s), `eta` (s),
/// `status` (the phase's message), `outcome`, `error`, `elapsed` (s), for the run's end the
/// summary counts, and for a record its `kind` and its `fields` (`name=value …`, the message
/// being the kind in words: `face status`). Absent values are left out.
#[derive(Debug)]
pub struct LogSink {
    phases: PacedPhases,
}

impl LogSink {
    /// A log sink with one progress line per phase per second.
    pub fn new() -> Self {
        Self::with_interval(1.0)
    }

    /// A log sink with at most one progress line per phase per `seconds` of run time.
    pub fn with_interval(seconds: f64) -> Self {
        Self {
            phases: PacedPhases::new(seconds),
        }
    }

    fn name(&self, id: u64) -> Option<&str> {
        self.phases.get(id).map(|p| p.name.as_str())
    }
}

impl Default for LogSink {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressSink for LogSink {
    fn handle(&mut self, event: &Event) -> Control {
        match event {
            Event::RunStarted {
                schema, tick_ms, ..
            } => {
                self.phases.run_started(0.0);
                info!(target: TARGET, schema, tick_ms, "progress run started");
            }
            Event::PhaseStarted {
                t,
                id,
                parent,
                name,
                total,
                unit,
                ..
            } => {
                self.phases.start(*t, *id, *parent, name, unit);
                info!(target: TARGET, phase = id, parent, name = name.as_str(), total, unit = unit.as_str(), "phase started");
            }
            Event::Progress {
                t,
                id,
                pos,
                total,
                rate,
                eta,
                message,
            } => {
                if !self.phases.due(*id, *t) {
                    return Control::Continue;
                }
                let status = message.as_deref();
                info!(target: TARGET, phase = id, name = self.name(*id), pos, total, rate, eta, status, "phase progress");
            }
            Event::RunProgress { t, fraction, eta } if self.phases.run_due(*t) => {
                debug!(target: TARGET, fraction, eta, "run progress");
            }
            Event::Message {
                phase, level, text, ..
            } => {
                let name = phase.and_then(|p| self.name(p));
                match level {
                    Level::Debug => debug!(target: TARGET, phase, name, "{text}"),
                    Level::Info => info!(target: TARGET, phase, name, "{text}"),
                    Level::Warn => warn!(target: TARGET, phase, name, "{text}"),
                    Level::Error => error!(target: TARGET, phase, name, "{text}"),
                }
            }
            Event::Preview {
                phase,
                frame,
                image,
                ..
            } => {
                let format = match image.format {
                    ImageFormat::Rgb8 => "rgb8",
                    ImageFormat::Png => "png",
                };
                trace!(target: TARGET, phase, frame, width = image.width, height = image.height, format, bytes = image.data.len(), "preview");
            }
            Event::Record(record) => {
                let words = record.kind.replace('_', " ");
                let (kind, fields) = (record.kind.as_ref(), &record.fields);
                debug!(target: TARGET, phase = record.phase, kind, fields = %fields, "{words}");
            }
            Event::PhaseFinished {
                id,
                outcome,
                error,
                pos,
                total,
                elapsed,
                ..
            } => {
                let info = self.phases.finish(*id);
                let name = info.as_ref().map(|i| i.name.as_str());
                let outcome_name = text::outcome_name(*outcome);
                let error = error.as_deref();
                match outcome {
                    Outcome::Completed => {
                        info!(target: TARGET, phase = id, name, outcome = outcome_name, pos, total, elapsed, "phase finished")
                    }
                    Outcome::Failed => {
                        error!(target: TARGET, phase = id, name, outcome = outcome_name, error, pos, total, elapsed, "phase finished")
                    }
                    Outcome::Cancelled | Outcome::Abandoned => {
                        warn!(target: TARGET, phase = id, name, outcome = outcome_name, pos, total, elapsed, "phase finished")
                    }
                }
            }
            Event::RunFinished { summary: s, .. } => {
                info!(
                    target: TARGET,
                    elapsed = s.elapsed,
                    cancelled = s.cancelled,
                    phases = s.phases,
                    completed = s.completed,
                    failed = s.failed,
                    cancelled_phases = s.cancelled_phases,
                    abandoned = s.abandoned,
                    dropped_previews = s.dropped_previews,
                    sink_failures = s.sink_failures,
                    "progress run finished"
                );
            }
            _ => {}
        }
        Control::Continue
    }

    fn name(&self) -> String {
        "log".into()
    }
}
