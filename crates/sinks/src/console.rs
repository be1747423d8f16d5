//! Console output: live indicatif bars on a terminal, plain periodic lines elsewhere.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use progress_core::{Control, Event, Level, Outcome, PhaseId, ProgressSink};

use crate::text::{self, Output, PacedPhases, PhaseTable};

/// The environment variable that overrides [`ConsoleSink::stderr`]'s choice: `bars`, `plain` or `off`.
pub const PROGRESS_ENV: &str = "FACESYNC_PROGRESS";

/// Progress for people: one live bar per active phase, or plain lines when not on a terminal.
///
/// - **Bars** ([`ConsoleSink::bars`]): an indicatif `MultiProgress`; children are indented under
///   their parents, each bar shows position, rate and ETA as computed by progress-core (`?`
///   until known; indicatif's own estimator is not used) and the phase's message. Messages are
///   printed above the bars. Finished top-level bars stay with a final state (`done in 3.2s`,
///   `cancelled at 48/100 after 1.2s`, `failed at 3/10: …`); finished children are cleared.
/// - **Plain** ([`ConsoleSink::plain`]): like tqdm in CI logs, one line when a phase starts, one
///   when it ends, and at most one progress line per phase per second of run time.
/// - **Off** ([`ConsoleSink::off`]): nothing.
///
/// [`ConsoleSink::stderr`] picks one for you.
pub struct ConsoleSink {
    mode: Mode,
}

impl std::fmt::Debug for ConsoleSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Bars(_) => "bars",
            Mode::Plain(_) => "plain",
            Mode::Off => "off",
        };
        f.debug_struct("ConsoleSink").field("mode", &mode).finish()
    }
}

enum Mode {
    Bars(Bars),
    Plain(Plain),
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Bars,
    Plain,
    Off,
}

/// `FACESYNC_PROGRESS` wins (`bars`, `plain`, `off`, case-insensitive); otherwise bars on a terminal.
fn choose(env: Option<&str>, is_terminal: bool) -> Choice {
    match env.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("bars") => Choice::Bars,
        Some("plain") => Choice::Plain,
        Some("off") => Choice::Off,
        _ if is_terminal => Choice::Bars,
        _ => Choice::Plain,
    }
}

impl ConsoleSink {
    /// Writes to stderr: live bars if stderr is a terminal, plain lines if not; the environment
    /// variable [`PROGRESS_ENV`] (`FACESYNC_PROGRESS=bars|plain|off`) overrides the choice.
    pub fn stderr() -> Self {
        let env = std::env::var(PROGRESS_ENV).ok();
        if let Some(value) = env.as_deref()
            && !matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "bars" | "plain" | "off"
            )
        {
            tracing::warn!(target: text::TARGET, value, "unknown {PROGRESS_ENV} value; expected bars, plain or off");
        }
        match choose(env.as_deref(), io::stderr().is_terminal()) {
            Choice::Bars => Self::bars(ProgressDrawTarget::stderr()),
            Choice::Plain => Self::plain(io::stderr()),
            Choice::Off => Self::off(),
        }
    }

    /// Live bars drawn to `target` (e.g. `ProgressDrawTarget::term_like` for an in-memory terminal).
    pub fn bars(target: ProgressDrawTarget) -> Self {
        Self {
            mode: Mode::Bars(Bars::new(target)),
        }
    }

    /// Plain lines written to `out`, flushed each tick: phase start and finish, at most one
    /// progress line per phase per second, one whole-run line (weighted fraction and ETA) per
    /// second, messages. Phases nested two levels or deeper (a
    /// chunk's "steps" under "Doing inference" under the job) that complete within a second
    /// print nothing, so a long run's log is not flooded with one start/finish pair per chunk;
    /// their start line appears with their first progress line, and a failure or cancellation
    /// is always printed.
    pub fn plain(out: impl Write + Send + 'static) -> Self {
        let out: Box<dyn Write + Send> = Box::new(out);
        Self {
            mode: Mode::Plain(Plain::new(out)),
        }
    }

    /// No output at all.
    pub fn off() -> Self {
        Self { mode: Mode::Off }
    }
}

impl ProgressSink for ConsoleSink {
    fn handle(&mut self, event: &Event) -> Control {
        match &mut self.mode {
            Mode::Bars(bars) => bars.handle(event),
            Mode::Plain(plain) => plain.handle(event),
            Mode::Off => {}
        }
        Control::Continue
    }

    fn flush(&mut self) {
        if let Mode::Plain(plain) = &mut self.mode {
            plain.out.flush();
        }
    }

    fn name(&self) -> String {
        "console".into()
    }
}

/// The text printed for a message, or `None` for levels the console leaves out (debug).
fn message_line(level: Level, text: &str) -> Option<String> {
    match level {
        Level::Debug => None,
        Level::Info => Some(text.to_string()),
        Level::Warn => Some(format!("warning: {text}")),
        Level::Error => Some(format!("error: {text}")),
    }
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

// ---------------------------------------------------------------------------------------------
// Live bars

struct Bars {
    multi: MultiProgress,
    phases: PhaseTable,
    bars: HashMap<PhaseId, ProgressBar>,
    /// Phase ids in the order their bars are shown (mirrors the `MultiProgress`).
    order: Vec<PhaseId>,
    /// Finished top-level bars: kept alive, since a dropped bar leaves the `MultiProgress`.
    kept: Vec<ProgressBar>,
    /// The whole run's fraction and ETA, below the phases (from the first `RunProgress`).
    run_bar: Option<ProgressBar>,
    /// The current shape of each phase's bar.
    shapes: HashMap<PhaseId, Shape>,
}

/// The whole-run bar counts in thousandths.
const RUN_BAR_LEN: u64 = 1000;
const RUN_TEMPLATE: &str = "{prefix}[{bar:30}] {percent}% {msg}";
/// Label of the whole-run bar and line.
const RUN_LABEL: &str = "whole run";

/// How a phase's line looks: a bar when its total is known, a count when it only counts, and
/// just its name (and, at the end, its outcome) when it has neither, like a job whose
/// children carry the progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Bar,
    Count,
    Label,
}

impl Shape {
    fn of(total: Option<u64>, pos: u64) -> Self {
        match total {
            Some(_) => Shape::Bar,
            None if pos > 0 => Shape::Count,
            None => Shape::Label,
        }
    }

    fn style(self) -> ProgressStyle {
        let template = match self {
            Shape::Bar => "{prefix}[{bar:30}] {pos}/{len} {msg}",
            Shape::Count => "{prefix}{pos} {msg}",
            Shape::Label => "{prefix}{msg}",
        };
        ProgressStyle::with_template(template)
            .expect("the bar templates are valid")
            .progress_chars("=> ")
    }
}

/// Gives `bar` the shape, length and position of `(total, pos)`; returns the shape.
fn reshape(
    shapes: &mut HashMap<PhaseId, Shape>,
    id: PhaseId,
    bar: &ProgressBar,
    total: Option<u64>,
    pos: u64,
) -> Shape {
    let shape = Shape::of(total, pos);
    if shapes.insert(id, shape) != Some(shape) {
        bar.set_style(shape.style());
    }
    if bar.length() != total {
        match total {
            Some(total) => bar.set_length(total),
            None => bar.unset_length(),
        }
    }
    bar.set_position(pos);
    shape
}

impl Bars {
    fn new(target: ProgressDrawTarget) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(target),
            phases: PhaseTable::default(),
            bars: HashMap::new(),
            order: Vec::new(),
            kept: Vec::new(),
            run_bar: None,
            shapes: HashMap::new(),
        }
    }

    /// Index in `order` after which a new child of `parent` goes: after its last descendant.
    fn last_descendant(&self, parent: PhaseId) -> Option<usize> {
        let start = self.order.iter().position(|&id| id == parent)?;
        let depth = self.phases.depth(parent);
        let mut last = start;
        while last + 1 < self.order.len() && self.phases.depth(self.order[last + 1]) > depth {
            last += 1;
        }
        Some(last)
    }

    fn handle(&mut self, event: &Event) {
        match event {
            Event::PhaseStarted {
                id,
                parent,
                name,
                total,
                unit,
                ..
            } => {
                let depth = self.phases.start(*id, *parent, name, unit);
                let bar = ProgressBar::hidden();
                if reshape(&mut self.shapes, *id, &bar, *total, 0) != Shape::Label {
                    bar.set_message(running_suffix(unit, None, None, None));
                }
                bar.set_prefix(format!("{}{name} ", indent(depth)));
                let after = parent.and_then(|p| self.last_descendant(p));
                let bar = match after {
                    Some(index) => {
                        let bar = self.multi.insert_after(&self.bars[&self.order[index]], bar);
                        self.order.insert(index + 1, *id);
                        bar
                    }
                    None => {
                        self.order.push(*id);
                        match &self.run_bar {
                            Some(run) => self.multi.insert_before(run, bar),
                            None => self.multi.add(bar),
                        }
                    }
                };
                bar.tick();
                self.bars.insert(*id, bar);
            }
            Event::Progress {
                id,
                pos,
                total,
                rate,
                eta,
                message,
                ..
            } => {
                let (Some(bar), Some(info)) = (self.bars.get(id), self.phases.get(*id)) else {
                    return;
                };
                let shape = reshape(&mut self.shapes, *id, bar, *total, *pos);
                bar.set_message(match shape {
                    Shape::Label => message.clone().unwrap_or_default(),
                    _ => running_suffix(&info.unit, *rate, *eta, message.as_deref()),
                });
            }
            Event::Message { level, text, .. } => {
                if let Some(line) = message_line(*level, text) {
                    // Printing above the bars can only fail if the terminal is gone.
                    let _ = self.multi.println(line);
                }
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
                let Some(bar) = self.bars.remove(id) else {
                    return;
                };
                let info = self.phases.remove(*id);
                if info.as_ref().is_some_and(|i| i.parent.is_some()) {
                    self.shapes.remove(id);
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                    self.order.retain(|o| o != id);
                    return;
                }
                reshape(&mut self.shapes, *id, &bar, *total, *pos);
                self.shapes.remove(id);
                bar.set_message(text::outcome(
                    *outcome,
                    error.as_deref(),
                    *pos,
                    *total,
                    *elapsed,
                ));
                bar.abandon();
                self.kept.push(bar);
            }
            Event::RunProgress { fraction, eta, .. } => {
                let run = self.run_bar.get_or_insert_with(|| {
                    let bar = ProgressBar::hidden();
                    bar.set_style(
                        ProgressStyle::with_template(RUN_TEMPLATE)
                            .expect("the run bar template is valid")
                            .progress_chars("=> "),
                    );
                    bar.set_length(RUN_BAR_LEN);
                    bar.set_prefix(format!("{RUN_LABEL} "));
                    self.multi.add(bar)
                });
                run.set_position((fraction.clamp(0.0, 1.0) * RUN_BAR_LEN as f64).round() as u64);
                run.set_message(format!("ETA {}", text::eta(*eta)));
            }
            Event::RunFinished { summary, .. } => {
                if let Some(run) = self.run_bar.take() {
                    run.finish_and_clear();
                    self.multi.remove(&run);
                }
                let _ = self.multi.println(text::summary(summary));
            }
            _ => {}
        }
    }
}

/// `frames  40.1 frames/s  ETA 1.3s  message`.
fn running_suffix(
    unit: &str,
    rate: Option<f64>,
    eta: Option<f64>,
    message: Option<&str>,
) -> String {
    let mut suffix = String::new();
    if !unit.is_empty() {
        suffix.push_str(unit);
        suffix.push_str("  ");
    }
    suffix.push_str(&format!(
        "{}  ETA {}",
        text::rate(rate, unit),
        text::eta(eta)
    ));
    if let Some(message) = message.filter(|m| !m.is_empty()) {
        suffix.push_str("  ");
        suffix.push_str(message);
    }
    suffix
}

// ---------------------------------------------------------------------------------------------
// Plain lines

struct Plain {
    out: Output<Box<dyn Write + Send>>,
    phases: PacedPhases,
    /// Start lines of deeply nested phases, held back until the phase has run a second.
    pending: HashMap<PhaseId, String>,
}

/// Depth from which a phase's start line waits for its first progress line.
const QUIET_DEPTH: usize = 2;

impl Plain {
    fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Output::new(out, "console"),
            phases: PacedPhases::new(1.0),
            pending: HashMap::new(),
        }
    }

    fn handle(&mut self, event: &Event) {
        match event {
            Event::PhaseStarted {
                t,
                id,
                parent,
                name,
                total,
                unit,
                ..
            } => {
                let depth = self.phases.start(*t, *id, *parent, name, unit);
                let line = match total {
                    Some(total) => {
                        format!("{}{name}: started, {}", indent(depth), count(*total, unit))
                    }
                    None => format!("{}{name}: started", indent(depth)),
                };
                if depth >= QUIET_DEPTH {
                    self.pending.insert(*id, line);
                } else {
                    self.out.line(&line);
                }
            }
            Event::Progress {
                t,
                id,
                pos,
                total,
                rate,
                eta,
                message,
                ..
            } => {
                let Some(info) = self.phases.due_known(*id, *t) else {
                    return;
                };
                if let Some(start) = self.pending.remove(id) {
                    self.out.line(&start);
                }
                let mut line = format!(
                    "{}{}: {}",
                    indent(info.depth),
                    info.name,
                    count_of(*pos, *total, &info.unit)
                );
                if let Some(total) = total.filter(|&t| t > 0) {
                    line.push_str(&format!(" ({:.0}%)", 100.0 * *pos as f64 / total as f64));
                }
                line.push_str(&format!(
                    ", {}, ETA {}",
                    text::rate(*rate, &info.unit),
                    text::eta(*eta)
                ));
                if let Some(message) = message.as_deref().filter(|m| !m.is_empty()) {
                    line.push_str(&format!(" - {message}"));
                }
                self.out.line(&line);
            }
            Event::Message { level, text, .. } => {
                if let Some(line) = message_line(*level, text) {
                    self.out.line(&line);
                }
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
                let Some(info) = self.phases.finish(*id) else {
                    return;
                };
                if let Some(start) = self.pending.remove(id) {
                    if *outcome == Outcome::Completed {
                        return;
                    }
                    self.out.line(&start);
                }
                let state = text::outcome(*outcome, error.as_deref(), *pos, *total, *elapsed);
                self.out
                    .line(&format!("{}{}: {state}", indent(info.depth), info.name));
            }
            Event::RunStarted { t, .. } => self.phases.run_started(*t),
            Event::RunProgress { t, fraction, eta } if self.phases.run_due(*t) => {
                self.out.line(&format!(
                    "{RUN_LABEL}: {:.0}%, ETA {}",
                    100.0 * fraction.clamp(0.0, 1.0),
                    text::eta(*eta)
                ));
            }
            Event::RunFinished { summary, .. } => {
                self.out.line(&text::summary(summary));
                self.out.flush();
            }
            _ => {}
        }
    }
}

/// `100 frames` (or `100` without a unit).
fn count(n: u64, unit: &str) -> String {
    if unit.is_empty() {
        n.to_string()
    } else {
        format!("{n} {unit}")
    }
}

/// `48/100 frames`.
fn count_of(pos: u64, total: Option<u64>, unit: &str) -> String {
    count_str(text::position(pos, total), unit)
}

fn count_str(n: String, unit: &str) -> String {
    if unit.is_empty() {
        n
    } else {
        format!("{n} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_choice() {
        let check = |env: Option<&str>, tty: bool, expected: Choice| {
            assert_eq!(choose(env, tty), expected, "env {env:?}, terminal {tty}");
        };
        check(None, true, Choice::Bars);
        check(None, false, Choice::Plain);
        check(Some("plain"), true, Choice::Plain);
        check(Some("BARS"), false, Choice::Bars);
        check(Some("off"), true, Choice::Off);
        check(Some(" off "), false, Choice::Off);
        check(Some("fancy"), false, Choice::Plain);
        check(Some(""), true, Choice::Bars);
    }

    #[test]
    fn suffixes() {
        assert_eq!(
            running_suffix("frames", None, None, None),
            "frames  ?  ETA ?"
        );
        assert_eq!(
            running_suffix("frames", Some(40.12), Some(1.3), Some("batch 3")),
            "frames  40.1 frames/s  ETA 1.3s  batch 3"
        );
        assert_eq!(
            running_suffix("", Some(2.0), None, Some("")),
            "2.0/s  ETA ?"
        );
    }
}
