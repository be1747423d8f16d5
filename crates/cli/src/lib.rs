//! The `facesync` command line: `run`, `sample`, `worker`, `submit`, `watch`, `cancel`.
//!
//! Why a library part: the binary (`src/main.rs`) is one call to [`main_with_args`], and
//! `cargo xtask pipeline` (the README's first command) calls the same function with its own
//! [`Defaults`], so the two cannot drift apart. Options are parsed by clap (derive); the option
//! values with a library type (no-face policy, backend, length policy) are parsed by that type's
//! parser, so the CLI, Python and the queue accept the same words.
//!
//! Being the program's front end, this crate is the one place that prints: help and results
//! on stdout, progress, messages and errors on stderr (plain text without colour codes when
//! stderr is not a terminal). Exit codes: 0 success, 1 error (the message names the input and
//! the problem, and no output file is left), 2 usage error (an unknown, misplaced or malformed
//! option, named), 130 cancelled (Ctrl-C).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// The command line prints by design (see above).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod logging;
mod options;
mod queue_cmd;
mod run_cmd;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  facesync run                                        lip-sync the built-in sample (in ./facesync-sample)
  facesync run --video in.mp4 --audio speech.wav --out out.mp4
  facesync sample --dir demo                          write demo/sample.y4m and demo/sample.wav
  facesync worker --nats nats://queue-host:4222       run queued jobs until Ctrl-C
  facesync submit --video /shared/in.mp4 --audio /shared/a.wav --out /shared/out.mp4
  facesync watch JOB                                  follow a queued job's progress
  facesync cancel JOB                                 cancel a queued or running job

`facesync <command> --help` shows a command's options and examples.
Exit codes: 0 done, 1 error, 2 bad command line, 130 cancelled (Ctrl-C).";

/// Lip-sync a video to an audio track, streaming chunk by chunk with live progress.
#[derive(Debug, Parser)]
#[command(name = "facesync", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lip-sync a video to an audio track (the built-in sample without --video/--audio).
    #[command(after_help = run_cmd::RUN_EXAMPLES)]
    Run(Box<run_cmd::RunArgs>),
    /// Write the built-in sample: a face video (Y4M) and speech-like audio (WAV).
    #[command(after_help = run_cmd::SAMPLE_EXAMPLES)]
    Sample(run_cmd::SampleArgs),
    /// Run lip-sync jobs from a NATS JetStream queue until Ctrl-C.
    #[command(after_help = queue_cmd::WORKER_EXAMPLES)]
    Worker(queue_cmd::WorkerArgs),
    /// Queue a lip-sync job; prints its id.
    #[command(after_help = queue_cmd::SUBMIT_EXAMPLES)]
    Submit(Box<queue_cmd::SubmitArgs>),
    /// Follow a queued job's progress until it ends.
    #[command(after_help = queue_cmd::WATCH_EXAMPLES)]
    Watch(queue_cmd::WatchArgs),
    /// Cancel a job, running or still waiting.
    #[command(after_help = queue_cmd::CANCEL_EXAMPLES)]
    Cancel(queue_cmd::CancelArgs),
}

/// What differs between the `facesync` binary and `cargo xtask pipeline`.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Where `run` writes the built-in sample (and its output) when neither `--video` nor
    /// `--sample-dir` is given: `facesync-sample` in the current directory for the binary,
    /// `target/facesync-sample` in the project for xtask.
    pub sample_dir: PathBuf,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            sample_dir: PathBuf::from("facesync-sample"),
        }
    }
}

/// A run stopped by Ctrl-C (or a progress sink): exit code 130.
#[derive(Debug)]
pub(crate) struct Cancelled {
    pub(crate) phase: String,
}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cancelled during {}; no output written", self.phase)
    }
}

impl std::error::Error for Cancelled {}

/// Parses `args` (the program name first, as `std::env::args_os` gives them) and runs the
/// command. Prints help, results and errors; returns the exit code.
pub fn main_with_args<I, T>(args: I, defaults: &Defaults) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with code 0, usage errors to stderr with code 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::Run(args) => run_cmd::run(&args, defaults),
        Command::Sample(args) => run_cmd::sample(&args),
        Command::Worker(args) => queue_cmd::worker(&args),
        Command::Submit(args) => queue_cmd::submit(&args),
        Command::Watch(args) => queue_cmd::watch(&args),
        Command::Cancel(args) => queue_cmd::cancel(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(cancelled) = e.downcast_ref::<Cancelled>() {
                eprintln!("{cancelled}");
                return ExitCode::from(130);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines (`tracing`) on stderr: colour codes only on a terminal; `RUST_LOG` filters
/// (default `filter`).
pub(crate) fn init_logging(filter: &str) {
    logging::init_stderr_log(filter);
}
