//! `cargo xtask bench pipeline`: throughput, progress overhead and memory growth of the whole
//! pipeline on the built-in sample.
//!
//! - `fps`: output frames per second of a run on a 10 s sample (256×256 frames, backend auto)
//!   with no sinks.
//! - `progress_overhead`: the same run with every sink on (console to a hidden target, log,
//!   JSON lines to a null writer, a callback) against no sink: `(t_all / t_none − 1) × 100 %`,
//!   each the best of two runs, measured side by side.
//! - `console_fps` and `console_y4m_fps`: what a user of `cargo xtask pipeline` sees: this
//!   binary re-run as `pipeline` with its defaults (make the 512×512, 4 s sample, the console
//!   sink on a pipe, i.e. plain lines, output H.264 MP4 through ffmpeg when it is on the PATH),
//!   frames over the child's wall-clock time from start to exit; then the same with a Y4M
//!   output, which leaves the encoder out. Printed beside `fps` (which times `pipeline::run`
//!   alone on 256×256 frames) so that the difference can be read off one run.
//! - `peak_rss_ratio_60s_vs_10s`: peak RSS (`VmHWM`) of a child process (this binary re-run as
//!   `pipeline --print-peak-rss`) on a 60 s sample over the same on a 10 s sample.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pipeline::sample::{SampleSpec, write_sample};
use pipeline::{Inputs, PipelineConfig};
use progress_core::{Control, Event, Progress};

const SIZE: u32 = 256;

pub(crate) fn run(_args: &[String]) -> Result<()> {
    let dir = Path::new("target/facesync-bench");
    let spec = SampleSpec {
        width: SIZE,
        height: SIZE,
        seconds: 10.0,
        ..SampleSpec::default()
    };
    let files = write_sample(&dir.join("10s"), &spec).context("cannot write the 10 s sample")?;
    let inputs = Inputs {
        video: files.video,
        audio: files.audio,
    };
    let out = dir.join("out.y4m");
    let config = PipelineConfig::default();

    let mut t_none = f64::INFINITY;
    let mut t_all = f64::INFINITY;
    let mut frames = 0;
    for _ in 0..2 {
        let (t, n) = timed_run(&config, &inputs, &out, false)?;
        t_none = t_none.min(t);
        frames = n;
        let (t, _) = timed_run(&config, &inputs, &out, true)?;
        t_all = t_all.min(t);
    }
    let fps = frames as f64 / t_none;
    let overhead = (t_all / t_none - 1.0) * 100.0;
    println!("no sinks: {frames} frames in {t_none:.2} s; all sinks: {t_all:.2} s");

    let (mp4_frames, mp4_secs, mp4_run) = child_console_run("mp4")?;
    let (y4m_frames, y4m_secs, y4m_run) = child_console_run("y4m")?;
    println!(
        "cargo xtask pipeline (defaults, 512x512 sample): mp4 {mp4_frames} frames in {mp4_secs:.2} s wall \
         (pipeline::run {mp4_run:.2} s), y4m {y4m_frames} frames in {y4m_secs:.2} s wall \
         (pipeline::run {y4m_run:.2} s)"
    );

    let rss10 = child_peak_rss(10.0)?;
    let rss60 = child_peak_rss(60.0)?;
    println!("peak RSS: 10 s clip {rss10} KiB, 60 s clip {rss60} KiB");
    println!(
        "pipeline-bench: fps={fps:.1} console_fps={:.1} console_y4m_fps={:.1} \
         progress_overhead={overhead:.1}% peak_rss_ratio_60s_vs_10s={:.3}",
        mp4_frames as f64 / mp4_secs,
        y4m_frames as f64 / y4m_secs,
        rss60 as f64 / rss10 as f64
    );
    Ok(())
}

fn timed_run(
    config: &PipelineConfig,
    inputs: &Inputs,
    out: &Path,
    sinks: bool,
) -> Result<(f64, u64)> {
    let mut builder = Progress::builder();
    if sinks {
        builder = builder
            .sink(sinks::ConsoleSink::bars(
                indicatif::ProgressDrawTarget::hidden(),
            ))
            .sink(sinks::LogSink::new())
            .sink(sinks::JsonLinesSink::new(std::io::sink()))
            .sink(|_: &Event| Control::Continue);
    }
    let progress = builder.start();
    let job = progress.phase("Lip sync", None, "frames");
    let start = Instant::now();
    let summary = pipeline::run(config, inputs, out, &job)
        .with_context(|| format!("pipeline run on {}", inputs.video.display()))?;
    job.finish();
    drop(job);
    progress.shutdown();
    Ok((start.elapsed().as_secs_f64(), summary.frames))
}

/// `cargo xtask pipeline` as a user runs it (this binary, so the same build): the default
/// sample and sinks, the output's extension `ext` (`mp4` goes through ffmpeg). Returns the
/// frames written, the child's wall-clock seconds and the seconds it reports for
/// `pipeline::run`.
fn child_console_run(ext: &str) -> Result<(u64, f64, f64)> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let dir = Path::new("target/facesync-bench/console");
    let start = Instant::now();
    let output = Command::new(exe)
        .args(["pipeline", "--sample-dir"])
        .arg(dir)
        .arg("--out")
        .arg(dir.join(format!("lipsync.{ext}")))
        .output()
        .context("cannot run the pipeline child process")?;
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("pipeline child ({ext}) failed: {stderr}");
    }
    // The last line: "output: PATH (N frames at F fps, S s)".
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("output: "))
        .context("the child did not print its output line")?;
    let inner = line
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix(" s)"))
        .with_context(|| format!("unexpected output line {line:?}"))?;
    let frames = inner
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no frame count in {line:?}"))?;
    let run_secs = inner
        .rsplit_once(", ")
        .and_then(|(_, v)| v.parse().ok())
        .with_context(|| format!("no time in {line:?}"))?;
    Ok((frames, wall, run_secs))
}

/// Runs the pipeline on a `seconds`-long sample in a child process and returns its peak RSS.
fn child_peak_rss(seconds: f64) -> Result<u64> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let output = Command::new(exe)
        .args([
            "pipeline",
            "--progress",
            "none",
            "--print-peak-rss",
            "--sample-size",
        ])
        .arg(SIZE.to_string())
        .arg("--sample-seconds")
        .arg(seconds.to_string())
        .arg("--sample-dir")
        .arg(format!("target/facesync-bench/rss-{seconds}"))
        .arg("--out")
        .arg(format!("target/facesync-bench/rss-{seconds}.y4m"))
        .output()
        .context("cannot run the pipeline child process")?;
    if !output.status.success() {
        bail!(
            "pipeline child ({seconds} s) failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&v: &u64| v > 0)
        .context("the child did not report its peak RSS")
}
