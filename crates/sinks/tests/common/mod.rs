//! Fixtures shared by the sink tests: an event sequence built by hand and an in-memory writer.
#![allow(dead_code, unreachable_pub)]

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use progress_core::{Event, Level, Outcome, RunSummary};

/// A `Write` into shared memory, so a test can read what a sink wrote.
#[derive(Debug, Clone, Default)]
pub struct Shared(pub Arc<Mutex<Vec<u8>>>);

impl Shared {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn started(t: f64, id: u64, parent: Option<u64>, name: &str, total: Option<u64>) -> Event {
    Event::PhaseStarted {
        t,
        id,
        parent,
        name: name.into(),
        total,
        unit: "frames".into(),
        weight: 1.0,
    }
}

pub fn progress(
    t: f64,
    id: u64,
    pos: u64,
    rate: Option<f64>,
    eta: Option<f64>,
    message: Option<&str>,
) -> Event {
    Event::Progress {
        t,
        id,
        pos,
        total: Some(100),
        rate,
        eta,
        message: message.map(Into::into),
    }
}

pub fn finished(t: f64, id: u64, outcome: Outcome, pos: u64, elapsed: f64) -> Event {
    let error = (outcome == Outcome::Failed).then(|| "no face in frame 3".to_string());
    Event::PhaseFinished {
        t,
        id,
        outcome,
        error,
        pos,
        total: Some(100),
        elapsed,
    }
}

/// A run of two nested phases: the child completes, the parent is cancelled at 48/100.
pub fn nested_run() -> Vec<Event> {
    vec![
        Event::RunStarted {
            schema: 1,
            t: 0.0,
            tick_ms: 100,
        },
        started(0.0, 1, None, "Processing faces", Some(100)),
        started(0.1, 2, Some(1), "Detecting", Some(100)),
        progress(0.2, 2, 10, None, None, None),
        progress(0.5, 1, 5, None, None, None),
        progress(1.1, 2, 50, Some(40.0), Some(1.3), Some("batch 5")),
        progress(1.2, 2, 55, Some(41.0), Some(1.1), None),
        Event::Message {
            t: 1.3,
            phase: Some(2),
            level: Level::Warn,
            text: "no face in frame 12".into(),
        },
        Event::Message {
            t: 1.4,
            phase: Some(2),
            level: Level::Debug,
            text: "batch of 8".into(),
        },
        finished(2.0, 2, Outcome::Completed, 100, 1.9),
        progress(2.4, 1, 48, None, None, None),
        finished(2.5, 1, Outcome::Cancelled, 48, 2.5),
        Event::RunFinished {
            t: 2.6,
            summary: summary(),
        },
    ]
}

pub fn summary() -> RunSummary {
    RunSummary {
        elapsed: 2.6,
        cancelled: true,
        phases: 2,
        completed: 1,
        cancelled_phases: 1,
        ..RunSummary::default()
    }
}

/// Captures `tracing` output of a JSON fmt layer while `f` runs on this thread.
pub fn capture_json_logs(f: impl FnOnce()) -> Vec<serde_json::Value> {
    let buf = Shared::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    buf.text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
        .collect()
}
