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
    pub(crate) fn start(&mut self, id: PhaseId, parent: Option<PhaseId>, name: &str, unit: &str) {
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
    }

    pub(crate) fn get(&self, id: PhaseId) -> Option<&PhaseInfo> {
        self.phases.get(&id)
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
}
