//! Text shared by the human-facing sinks (console bars, plain lines, log).

use std::collections::HashMap;
use std::io::{self, Write};

use progress_core::{Outcome, PhaseId, RunSummary};

/// The tracing target every sink in this crate logs under.
pub(crate) const TARGET: &str = "facesync::progress";

/// Seconds as `3.2s`, `4m05s` or `1h02m`.
pub(crate) fn secs(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let whole = s.round() as u64;
    if whole < 3600 {
        return format!("{}m{:02}s", whole / 60, whole % 60);
    }
    format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
}

/// `40.1 frames/s`, or `?` while there is no rate.
pub(crate) fn rate(rate: Option<f64>, unit: &str) -> String {
    match (rate, unit.is_empty()) {
        (None, _) => "?".into(),
        (Some(r), true) => format!("{r:.1}/s"),
        (Some(r), false) => format!("{r:.1} {unit}/s"),
    }
}

/// `1.3s`, or `?` while unknown.
pub(crate) fn eta(eta: Option<f64>) -> String {
    eta.map_or_else(|| "?".into(), secs)
}

/// `48/100`, or `48` without a total.
pub(crate) fn position(pos: u64, total: Option<u64>) -> String {
    match total {
        Some(total) => format!("{pos}/{total}"),
        None => pos.to_string(),
    }
}

/// The last word on a phase: `done in 3.2s`, `cancelled at 48/100 after 1.2s`, `failed at 3/10: …`.
pub(crate) fn outcome(
    outcome: Outcome,
    error: Option<&str>,
    pos: u64,
    total: Option<u64>,
    elapsed: f64,
) -> String {
    let at = position(pos, total);
    match outcome {
        Outcome::Completed => format!("done in {}", secs(elapsed)),
        Outcome::Cancelled => format!("cancelled at {at} after {}", secs(elapsed)),
        Outcome::Abandoned => format!("abandoned at {at} after {}", secs(elapsed)),
        Outcome::Failed => format!("failed at {at}: {}", error.unwrap_or("unknown error")),
    }
}

/// `completed` etc., as in the JSON schema.
pub(crate) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Completed => "completed",
        Outcome::Failed => "failed",
        Outcome::Cancelled => "cancelled",
        Outcome::Abandoned => "abandoned",
    }
}

/// `run cancelled after 1.2s: 1 completed, 2 cancelled`.
pub(crate) fn summary(s: &RunSummary) -> String {
    let verb = if s.cancelled { "cancelled" } else { "finished" };
    let mut line = format!(
        "run {verb} after {}: {} completed",
        secs(s.elapsed),
        s.completed
    );
    for (n, what) in [
        (s.failed, "failed"),
        (s.cancelled_phases, "cancelled"),
        (s.abandoned, "abandoned"),
        (s.dropped_previews, "previews dropped"),
        (s.sink_failures, "sinks failed"),
    ] {
        if n > 0 {
            line.push_str(&format!(", {n} {what}"));
        }
    }
    line
}

/// What a sink remembers about a phase from its `PhaseStarted`.
#[derive(Debug, Clone)]
pub(crate) struct PhaseInfo {
    pub(crate) name: String,
    pub(crate) parent: Option<PhaseId>,
    pub(crate) depth: usize,
    pub(crate) unit: String,
}

/// The phases a sink has seen, by id.
#[derive(Debug, Default)]
pub(crate) struct PhaseTable {
    phases: HashMap<PhaseId, PhaseInfo>,
}

impl PhaseTable {
    /// Records a started phase; returns its depth (0 at the top, or when the parent is unknown).
    pub(crate) fn start(
        &mut self,
        id: PhaseId,
        parent: Option<PhaseId>,
        name: &str,
        unit: &str,
    ) -> usize {
        let depth = parent
            .and_then(|p| self.phases.get(&p))
            .map_or(0, |p| p.depth + 1);
        let info = PhaseInfo {
            name: name.into(),
            parent,
            depth,
            unit: unit.into(),
        };
        self.phases.insert(id, info);
        depth
    }

    pub(crate) fn get(&self, id: PhaseId) -> Option<&PhaseInfo> {
        self.phases.get(&id)
    }

    /// A phase's depth, 0 for one not (or no longer) known.
    pub(crate) fn depth(&self, id: PhaseId) -> usize {
        self.get(id).map_or(0, |p| p.depth)
    }

    pub(crate) fn remove(&mut self, id: PhaseId) -> Option<PhaseInfo> {
        self.phases.remove(&id)
    }
}

/// Per-phase rate limit by event time: at most one line per `interval` seconds.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: f64,
    last: HashMap<PhaseId, f64>,
}

impl Throttle {
    pub(crate) fn new(interval: f64) -> Self {
        Self {
            interval,
            last: HashMap::new(),
        }
    }

    /// Starts the clock of a phase (its start line counts as a line).
    pub(crate) fn reset(&mut self, id: PhaseId, t: f64) {
        self.last.insert(id, t);
    }

    /// Whether a line for `id` at time `t` is due; if so, records it.
    pub(crate) fn due(&mut self, id: PhaseId, t: f64) -> bool {
        let due = self
            .last
            .get(&id)
            .is_none_or(|last| t - last >= self.interval);
        if due {
            self.last.insert(id, t);
        }
        due
    }

    pub(crate) fn forget(&mut self, id: PhaseId) {
        self.last.remove(&id);
    }
}

/// Throttle key of the whole-run line (phase ids start at 1).
const RUN_KEY: PhaseId = 0;

/// The phases of a sink that prints rate-limited lines (plain console, log): each phase's
/// bookkeeping and clock start and end together, and the whole run has a clock of its own.
#[derive(Debug)]
pub(crate) struct PacedPhases {
    phases: PhaseTable,
    throttle: Throttle,
}

impl PacedPhases {
    /// At most one progress line per phase, and one whole-run line, per `interval` seconds.
    pub(crate) fn new(interval: f64) -> Self {
        Self {
            phases: PhaseTable::default(),
            throttle: Throttle::new(interval),
        }
    }

    /// Records a phase started at `t` and starts its clock; returns its depth.
    pub(crate) fn start(
        &mut self,
        t: f64,
        id: PhaseId,
        parent: Option<PhaseId>,
        name: &str,
        unit: &str,
    ) -> usize {
        self.throttle.reset(id, t);
        self.phases.start(id, parent, name, unit)
    }

    pub(crate) fn get(&self, id: PhaseId) -> Option<&PhaseInfo> {
        self.phases.get(id)
    }

    /// Whether a progress line for `id` at time `t` is due; if so, records it.
    pub(crate) fn due(&mut self, id: PhaseId, t: f64) -> bool {
        self.throttle.due(id, t)
    }

    /// The phase, if it is known and a progress line for it at time `t` is due (which records
    /// the line); an unknown phase leaves the clock alone.
    pub(crate) fn due_known(&mut self, id: PhaseId, t: f64) -> Option<&PhaseInfo> {
        let info = self.phases.get(id)?;
        self.throttle.due(id, t).then_some(info)
    }

    /// Forgets a finished phase; returns what was known of it.
    pub(crate) fn finish(&mut self, id: PhaseId) -> Option<PhaseInfo> {
        self.throttle.forget(id);
        self.phases.remove(id)
    }

    /// Starts the whole run's clock at `t`.
    pub(crate) fn run_started(&mut self, t: f64) {
        self.throttle.reset(RUN_KEY, t);
    }

    /// Whether a whole-run line at time `t` is due; if so, records it.
    pub(crate) fn run_due(&mut self, t: f64) -> bool {
        self.throttle.due(RUN_KEY, t)
    }
}

/// A writer that reports its first i/o error through tracing and then discards everything.
#[derive(Debug)]
pub(crate) struct Output<W: Write> {
    inner: Option<W>,
    sink: &'static str,
}

impl<W: Write> Output<W> {
    pub(crate) fn new(inner: W, sink: &'static str) -> Self {
        Self {
            inner: Some(inner),
            sink,
        }
    }

    /// Runs `f` on the writer unless an earlier write failed.
    pub(crate) fn write_with(&mut self, f: impl FnOnce(&mut W) -> io::Result<()>) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        if let Err(error) = f(inner) {
            self.fail(&error);
        }
    }

    /// Whether an earlier write failed (everything is discarded since).
    pub(crate) fn failed(&self) -> bool {
        self.inner.is_none()
    }

    pub(crate) fn line(&mut self, line: &str) {
        self.write_with(|w| writeln!(w, "{line}"));
    }

    pub(crate) fn flush(&mut self) {
        self.write_with(|w| w.flush());
    }

    fn fail(&mut self, error: &io::Error) {
        tracing::warn!(
            target: TARGET,
            sink = self.sink,
            error = %error,
            "progress sink output failed; further output from this sink is discarded"
        );
        self.inner = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, expected) in [
            (0.0, "0.0s"),
            (3.24, "3.2s"),
            (59.9, "59.9s"),
            (245.0, "4m05s"),
            (3725.0, "1h02m"),
            (-1.0, "0.0s"),
        ] {
            assert_eq!(secs(s), expected, "secs({s})");
        }
    }

    #[test]
    fn outcomes() {
        let check = |o, err, pos, total, expected: &str| {
            assert_eq!(outcome(o, err, pos, total, 1.25), expected);
        };
        check(Outcome::Completed, None, 100, Some(100), "done in 1.2s");
        check(
            Outcome::Cancelled,
            None,
            48,
            Some(100),
            "cancelled at 48/100 after 1.2s",
        );
        check(
            Outcome::Abandoned,
            None,
            7,
            None,
            "abandoned at 7 after 1.2s",
        );
        check(
            Outcome::Failed,
            Some("no face"),
            3,
            Some(10),
            "failed at 3/10: no face",
        );
    }

    #[test]
    fn throttle_allows_one_line_per_interval() {
        let mut throttle = Throttle::new(1.0);
        throttle.reset(1, 0.0);
        let due: Vec<bool> = [0.5, 0.99, 1.0, 1.5, 2.1]
            .iter()
            .map(|&t| throttle.due(1, t))
            .collect();
        assert_eq!(due, [false, false, true, false, true]);
    }

    #[test]
    fn paced_phases_start_and_finish_phase_and_clock_together() {
        let mut phases = PacedPhases::new(1.0);
        assert_eq!(phases.start(0.0, 1, None, "job", ""), 0);
        assert_eq!(phases.start(0.5, 2, Some(1), "step", "frames"), 1);
        assert!(phases.due_known(2, 1.0).is_none(), "started at 0.5");
        assert_eq!(phases.due_known(2, 1.5).map(|p| p.depth), Some(1));
        assert!(phases.due_known(9, 5.0).is_none(), "unknown phase");
        assert!(
            phases.due(9, 5.0),
            "an unknown phase's clock was left alone"
        );
        assert_eq!(phases.finish(2).map(|p| p.name), Some("step".into()));
        assert!(phases.get(2).is_none());
        assert!(phases.due(2, 1.6), "a finished phase's clock is forgotten");
        phases.run_started(0.0);
        assert!(!phases.run_due(0.9));
        assert!(phases.run_due(1.0));
    }
}
