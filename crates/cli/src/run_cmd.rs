//! `facesync run` (and `cargo xtask pipeline`) and `facesync sample`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pipeline::sample::SampleSpec;
use pipeline::{Inputs, PipelineError, Summary};
use progress_core::{Control, Event, ImageFormat, Level, Progress};

use crate::options::JobArgs;
use crate::{Cancelled, Defaults};

pub(crate) const RUN_EXAMPLES: &str = "\
Without --video/--audio, writes the built-in sample (a real face photo moved by a smooth head
motion, 4 s at 25 fps, with speech-like audio) into --sample-dir and runs on it; the output goes
there as lipsync.mp4 (lipsync.y4m when ffmpeg is missing). The output is written under a
temporary name and appears only when every stage succeeded.

Examples:
  facesync run
      lip-sync the built-in sample; prints where the output is
  facesync run --video in.mp4 --audio speech.wav --out out.mp4
      any container ffmpeg reads; mp4/mov/mkv output has the audio muxed in
  facesync run --video frames/ --audio a.wav --out out/ --no-face interpolate
      a folder of PNG frames in, PNG frames out; faceless gaps take their neighbours' transform
  facesync run --video in.y4m --audio a.wav --out out.y4m --backend cpu --progress json --progress-file events.jsonl
      no GPU; progress events as JSON lines in events.jsonl
  facesync run --sample-seconds 10 --sample-size 256 --length trim
      a longer, smaller sample

Environment: FACESYNC_BACKEND=auto|gpu|cpu (default of --backend), ORT_DYLIB_PATH (the ONNX
Runtime library), FACESYNC_PROGRESS=bars|plain|off
(the console's bars or plain lines; plain when stderr is not a terminal), WGPU_ADAPTER_NAME,
WGPU_BACKEND. Ctrl-C cancels cleanly: exit code 130, no output file left.";

pub(crate) const SAMPLE_EXAMPLES: &str = "\
Prints the two paths, one per line. Both files are written under temporary names and renamed
when complete.

Examples:
  facesync sample
      ./facesync-sample/sample.y4m and ./facesync-sample/sample.wav, 4 s of 512x512 at 25 fps
  facesync sample --dir demo --seconds 10 --size 256";

/// Which progress sinks `run` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SinkKind {
    /// Bars on a terminal, plain lines otherwise (stderr).
    Console,
    /// `tracing` log lines (stderr).
    Log,
    /// JSON lines (stdout, or --progress-file).
    Json,
    /// Nothing.
    None,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Video: .y4m, a folder of .png frames, or any container ffmpeg reads
    #[arg(long, value_name = "IN", requires_all = ["audio", "out"])]
    video: Option<PathBuf>,
    /// Audio: .wav, or any format ffmpeg reads
    #[arg(long, value_name = "IN", requires = "video")]
    audio: Option<PathBuf>,
    /// Output: .y4m, a folder (PNG frames), or .mp4/.mov/.mkv (ffmpeg, audio muxed in)
    /// [default with the sample: <sample-dir>/lipsync.mp4]
    #[arg(long, value_name = "OUT")]
    out: Option<PathBuf>,
    #[command(flatten)]
    job: JobArgs,
    /// Frame rate of a folder of PNG frames (which has none of its own): 25, 29.97,
    /// 30000/1001 [default: 25]
    #[arg(long, value_name = "RATE")]
    fps: Option<pipeline::media_io::Rational>,
    /// Write the faces the run used to FILE, one JSON line per frame (box, score, frame → crop
    /// map, FaceFusion's 5 points, the 68 points and the 468 mesh points, frame pixels);
    /// written only when the run succeeds
    #[arg(long, value_name = "FILE")]
    landmarks_out: Option<PathBuf>,
    /// The ONNX Runtime library for a learned --model [default: ORT_DYLIB_PATH, else the one of
    /// an installed onnxruntime / onnxruntime-gpu Python package]
    #[arg(long, value_name = "LIB")]
    onnx_runtime: Option<PathBuf>,
    /// Progress sinks, repeatable or comma-separated [default: console]
    #[arg(long, value_name = "SINKS", value_enum, value_delimiter = ',')]
    progress: Vec<SinkKind>,
    /// Write the json events to FILE instead of stdout (implies --progress json)
    #[arg(long, value_name = "FILE")]
    progress_file: Option<PathBuf>,
    /// Save the inference preview images (PPM) in DIR
    #[arg(long, value_name = "DIR")]
    preview_dir: Option<PathBuf>,
    /// Built-in sample: length in seconds [default: 4]
    #[arg(long, value_name = "S", conflicts_with = "video", value_parser = sample_seconds)]
    sample_seconds: Option<f64>,
    /// Built-in sample: frame width and height in pixels [default: 512]
    #[arg(long, value_name = "N", conflicts_with = "video",
          value_parser = clap::value_parser!(u32).range(16..))]
    sample_size: Option<u32>,
    /// Built-in sample: where it and the default output go [default: ./facesync-sample]
    #[arg(long, value_name = "DIR", conflicts_with = "video")]
    sample_dir: Option<PathBuf>,
    /// Print peak_rss_kib=<peak resident memory> on stdout at the end
    #[arg(long)]
    print_peak_rss: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SampleArgs {
    /// Where to write sample.y4m and sample.wav (created if needed)
    #[arg(long, value_name = "DIR", default_value = "facesync-sample")]
    dir: PathBuf,
    /// Length in seconds
    #[arg(long, value_name = "S", default_value_t = 4.0, value_parser = sample_seconds)]
    seconds: f64,
    /// Frame width and height in pixels
    #[arg(long, value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(16..))]
    size: u32,
}

fn sample_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.04 => Ok(v),
        _ => Err(format!("{s}: expected at least 0.04 (one frame)")),
    }
}

/// `facesync sample`.
pub(crate) fn sample(args: &SampleArgs) -> Result<()> {
    let spec = SampleSpec {
        width: args.size,
        height: args.size,
        seconds: args.seconds,
        ..SampleSpec::default()
    };
    let files = pipeline::sample::write_sample(&args.dir, &spec)
        .with_context(|| format!("cannot write the sample into {}", args.dir.display()))?;
    println!("{}", absolute(&files.video).display());
    println!("{}", absolute(&files.audio).display());
    Ok(())
}

/// `facesync run`.
pub(crate) fn run(args: &RunArgs, defaults: &Defaults) -> Result<()> {
    let mut config = pipeline::PipelineConfig::from(args.job.options.clone());
    config.onnx_runtime.clone_from(&args.onnx_runtime);
    config.landmarks_out.clone_from(&args.landmarks_out);
    if let Some(fps) = args.fps {
        config.png_fps = fps;
    }
    let mut sinks = args.progress.clone();
    if sinks.is_empty() {
        sinks.push(SinkKind::Console);
    }
    if args.progress_file.is_some() && !sinks.contains(&SinkKind::Json) {
        sinks.push(SinkKind::Json);
    }
    let progress = start_progress(args, &sinks)?;
    // Installed before any work, so that Ctrl-C always cancels through the token (and the
    // stages clean up) instead of killing the process half-way through writing a file.
    let token = progress.cancel_token().clone();
    // Ignore the error when a handler exists already (a second run in one process).
    let _ = ctrlc::set_handler(move || token.cancel());
    let result = run_job(args, &config, &sinks, &progress, defaults);
    progress.shutdown();
    if args.print_peak_rss {
        println!("peak_rss_kib={}", peak_rss_kib().unwrap_or(0));
    }
    let summary = result?;
    eprintln!(
        "output: {} ({} frames at {} fps, {:.1} s)",
        absolute(&summary.output).display(),
        summary.frames,
        summary.fps,
        summary.elapsed_secs
    );
    Ok(())
}

/// The progress run with the sinks asked for.
fn start_progress(args: &RunArgs, sinks: &[SinkKind]) -> Result<Progress> {
    let mut builder = Progress::builder();
    for sink in sinks {
        builder = match sink {
            SinkKind::Console => builder.sink(sinks::ConsoleSink::stderr()),
            SinkKind::Log => {
                crate::init_logging("info");
                builder.sink(sinks::LogSink::new())
            }
            SinkKind::Json => match &args.progress_file {
                Some(f) => builder.sink(sinks::JsonLinesSink::new(std::io::BufWriter::new(
                    std::fs::File::create(f)
                        .with_context(|| format!("cannot create {}", f.display()))?,
                ))),
                None => builder.sink(sinks::JsonLinesSink::new(std::io::stdout())),
            },
            SinkKind::None => builder,
        };
    }
    if let Some(dir) = &args.preview_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        builder = builder.sink(preview_writer(dir.clone()));
    }
    Ok(builder.start())
}

fn cancelled_or(e: PipelineError, context: impl FnOnce() -> String) -> anyhow::Error {
    match e {
        PipelineError::Cancelled { phase } => Cancelled { phase }.into(),
        e => anyhow::Error::new(e).context(context()),
    }
}

/// Makes the sample when no input is given, then runs the pipeline; every phase has ended
/// when this returns.
fn run_job(
    args: &RunArgs,
    config: &pipeline::PipelineConfig,
    sinks: &[SinkKind],
    progress: &Progress,
    defaults: &Defaults,
) -> Result<Summary> {
    // Both top-level phases exist from the start, so that the whole-run fraction does not
    // jump back when the job starts after the sample.
    let sample_phase = args
        .video
        .is_none()
        .then(|| progress.phase("Making the sample", None, "frames"));
    let job = progress.phase("Lip sync", None, "frames");
    let (inputs, out) = match (&args.video, &args.audio, &args.out) {
        (Some(video), Some(audio), Some(out)) => (
            Inputs {
                video: video.clone(),
                audio: audio.clone(),
            },
            out.clone(),
        ),
        _ => {
            let sample_dir = args
                .sample_dir
                .clone()
                .unwrap_or_else(|| defaults.sample_dir.clone());
            let mut spec = SampleSpec::default();
            if let Some(s) = args.sample_seconds {
                spec.seconds = s;
            }
            if let Some(s) = args.sample_size {
                spec.width = s;
                spec.height = s;
            }
            let phase = sample_phase.expect("made when there is no --video");
            let files = match pipeline::sample::write_sample_reporting(&sample_dir, &spec, &phase) {
                Ok(files) => files,
                Err(e) => {
                    phase.fail(&e);
                    job.fail("the built-in sample could not be made");
                    return Err(cancelled_or(e, || {
                        format!(
                            "cannot write the built-in sample into {}",
                            sample_dir.display()
                        )
                    }));
                }
            };
            let text = format!(
                "sample: {} + {}",
                absolute(&files.video).display(),
                absolute(&files.audio).display()
            );
            // Through the console sink when there is one, so that it prints above the bars.
            if sinks.contains(&SinkKind::Console) {
                phase.message(Level::Info, text);
            } else {
                eprintln!("{text}");
            }
            phase.finish();
            let out = args.out.clone().unwrap_or_else(|| {
                let ext = if has_ffmpeg() { "mp4" } else { "y4m" };
                sample_dir.join(format!("lipsync.{ext}"))
            });
            (
                Inputs {
                    video: files.video,
                    audio: files.audio,
                },
                out,
            )
        }
    };

    let result = pipeline::run(config, &inputs, &out, &job);
    match &result {
        Ok(_) => job.finish(),
        Err(e) => job.fail(e),
    }
    result.map_err(|e| {
        cancelled_or(e, || {
            format!(
                "lip sync of {} with {} failed",
                inputs.video.display(),
                inputs.audio.display()
            )
        })
    })
}

fn has_ffmpeg() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `path` made absolute, for the lines that tell the user where files are.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A sink that saves every preview it receives as a file in `dir`.
fn preview_writer(dir: PathBuf) -> impl FnMut(&Event) -> Control + Send + 'static {
    move |event: &Event| {
        if let Event::Preview { frame, image, .. } = event {
            let _ = save_preview(&dir, *frame, image);
        }
        Control::Continue
    }
}

fn save_preview(
    dir: &Path,
    frame: u64,
    image: &progress_core::PreviewImage,
) -> std::io::Result<()> {
    match image.format {
        ImageFormat::Png => {
            std::fs::write(dir.join(format!("preview_{frame:06}.png")), &image.data)
        }
        ImageFormat::Rgb8 => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(
                dir.join(format!("preview_{frame:06}.ppm")),
            )?);
            write!(f, "P6\n{} {}\n255\n", image.width, image.height)?;
            f.write_all(&image.data)?;
            f.flush()
        }
    }
}

/// This process's peak resident set size (`VmHWM` in /proc/self/status), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
