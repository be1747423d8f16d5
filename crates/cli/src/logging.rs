//! The stderr log set-up of the command line (`run`, `sample`, and the queue worker): plain text
//! without colour codes unless stderr is a terminal.
//!
//! Why: a worker's stderr is usually a log file or a journal, where ANSI escapes are noise. Why
//! here: the libraries (the `sinks` crate's `LogSink` among them) only emit `tracing` events;
//! where they go is the application's choice, and this binary is the one that makes it.

use std::io::IsTerminal;

use tracing_subscriber::fmt::MakeWriter;

/// Whether log lines on stderr should carry ANSI colour: only when stderr is a terminal, and
/// never when `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
pub(crate) fn stderr_wants_colour() -> bool {
    colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    )
}

fn colour(is_terminal: bool, no_color: bool) -> bool {
    is_terminal && !no_color
}

/// A `tracing` fmt subscriber writing to `writer`, with colour codes only if `ansi`, filtered by
/// `RUST_LOG` when set and valid, else by `default_filter` (e.g. `"info,async_nats=warn"`).
pub(crate) fn log_subscriber<W>(
    writer: W,
    ansi: bool,
    default_filter: &str,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .finish()
}

/// Installs [`log_subscriber`] on stderr as the global default, coloured only when
/// [`stderr_wants_colour`]. Returns `false` (and changes nothing) when a global subscriber was
/// already set.
pub(crate) fn init_stderr_log(default_filter: &str) -> bool {
    tracing::subscriber::set_global_default(log_subscriber(
        std::io::stderr,
        stderr_wants_colour(),
        default_filter,
    ))
    .is_ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(super::colour(true, false));
        assert!(!super::colour(false, false));
        assert!(!super::colour(true, true));
        assert!(!super::colour(false, true));
    }

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
        let subscriber = super::log_subscriber(move || out.clone(), ansi, "info");
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
            assert!(!super::stderr_wants_colour());
        }
    }
}
