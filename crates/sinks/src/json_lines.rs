//! One JSON event per line, for other tools to read.

use std::io::Write;

use progress_core::{Control, Event, ProgressSink};

use crate::text::Output;

/// Writes each event as one line of JSON (progress-core's versioned schema) to any `Write`.
///
/// Output is buffered and flushed once per dispatcher tick and at the end of the run. The first
/// i/o error is reported once through `tracing` (target `facesync::progress`) and stops all
/// further writes; the sink never panics on i/o.
pub struct JsonLinesSink<W: Write> {
    /// Lines of the current tick. Our own buffer rather than a `BufWriter`, so nothing is
    /// retried on drop after a failure.
    buf: Vec<u8>,
    out: Output<W>,
}

/// Write out early when a tick's lines (e.g. previews) grow past this many bytes.
const EARLY_WRITE: usize = 1 << 20;

impl<W: Write> std::fmt::Debug for JsonLinesSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> JsonLinesSink<W> {
    /// Writes to `out` (a file, a pipe, stdout, a socket…).
    pub fn new(out: W) -> Self {
        Self {
            buf: Vec::new(),
            out: Output::new(out, "json lines"),
        }
    }

    fn write_out(&mut self) {
        let buf = &self.buf;
        self.out.write_with(|w| {
            w.write_all(buf)?;
            w.flush()
        });
        self.buf.clear();
    }
}

impl<W: Write + Send + 'static> ProgressSink for JsonLinesSink<W> {
    fn handle(&mut self, event: &Event) -> Control {
        if self.out.failed() {
            return Control::Continue;
        }
        serde_json::to_writer(&mut self.buf, event).expect("events serialise to JSON");
        self.buf.push(b'\n');
        if self.buf.len() >= EARLY_WRITE || matches!(event, Event::RunFinished { .. }) {
            self.write_out();
        }
        Control::Continue
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.write_out();
        }
    }

    fn name(&self) -> String {
        "json lines".into()
    }
}
