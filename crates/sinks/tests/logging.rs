//! The shared stderr log setup writes plain text when colour is off (not a terminal).

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(ansi: bool) -> String {
    let buf = Buffer::default();
    let out = buf.clone();
    let subscriber = sinks::log_subscriber(move || out.clone(), ansi, "info");
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(job = "j1", "worker could not reach the server");
    });
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn no_escape_codes_without_colour_and_some_with_it() {
    let plain = logged(false);
    assert!(
        plain.contains("WARN") && plain.contains("worker could not reach the server"),
        "{plain:?}"
    );
    assert!(plain.contains("job=\"j1\""), "{plain:?}");
    assert!(
        !plain.contains('\x1b'),
        "escape codes in a non-terminal log: {plain:?}"
    );
    let coloured = logged(true);
    assert!(
        coloured.contains("\x1b["),
        "colour was asked for: {coloured:?}"
    );
}

#[test]
fn stderr_of_a_test_is_not_a_terminal_so_no_colour() {
    // cargo test captures stderr through a pipe; the decision must be "no colour" there.
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        assert!(!sinks::stderr_wants_colour());
    }
}
use facesync_sinks as sinks;
