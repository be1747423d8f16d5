//! The stderr log setup shared by the command-line front ends (xtask, the queue worker, the
//! CLI): plain text without colour codes unless stderr is a terminal.
//!
//! Why here: a worker's stderr is usually a log file or a journal, where ANSI escapes are noise;
//! every binary that shows [`LogSink`](crate::LogSink) output should decide this the same way.

use std::io::IsTerminal;

use tracing_subscriber::fmt::MakeWriter;

/// Whether log lines on stderr should carry ANSI colour: only when stderr is a terminal, and
/// never when `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
pub fn stderr_wants_colour() -> bool {
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
pub fn log_subscriber<W>(
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
pub fn init_stderr_log(default_filter: &str) -> bool {
    tracing::subscriber::set_global_default(log_subscriber(
        std::io::stderr,
        stderr_wants_colour(),
        default_filter,
    ))
    .is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(super::colour(true, false));
        assert!(!super::colour(false, false));
        assert!(!super::colour(true, true));
        assert!(!super::colour(false, true));
    }
}
