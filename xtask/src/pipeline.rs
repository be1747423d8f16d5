//! `cargo xtask pipeline`: run the lip-sync pipeline on the built-in sample or on given files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pipeline::{Inputs, ModelSpec, PipelineConfig, PipelineError, Summary};
use progress_core::{Control, Event, ImageFormat, Level, Progress};

pub(crate) const HELP: &str = "usage: cargo xtask pipeline [options]

Without --video/--audio: generates the built-in sample (a real face photo moved by a smooth
head motion, 4 s at 25 fps, with speech-like audio) in target/facesync-sample/ and runs on it;
the output goes to target/facesync-sample/lipsync.mp4 (lipsync.y4m when ffmpeg is missing).
Relative paths are taken from the directory the command runs in.

options:
  --video IN            video: .y4m, a folder of .png frames, or any container ffmpeg reads
  --audio IN            audio: .wav, or any format ffmpeg reads
  --out OUT             output: .y4m, a folder (PNG frames), or .mp4/.mov/.mkv (ffmpeg, audio muxed)
  --resolution 256|512  face crop size (default 256)
  --steps N             inference refinement steps (default 20)
  --chunk N             frames per chunk (default 16)
  --no-face pass|error|interpolate   frames without a face (default pass: copied untouched;
                                     interpolate: the transform from the faces either side,
                                     for gaps up to 12 frames)
  --backend auto|gpu|cpu             compute device (default auto: a hardware GPU when there
                                     is one, else the CPU; gpu: any adapter, software included;
                                     without --backend gpu|cpu, FACESYNC_BACKEND=auto|gpu|cpu
                                     decides)
  --model builtin|wav2lip:PATH|edtalk:PATH|latentsync:DIR
                        lip-sync model (default builtin): FaceFusion's wav2lip_96.onnx /
                        wav2lip_gan_96.onnx or edtalk_256.onnx, or a folder with LatentSync's
                        ONNX export (whisper_tiny, vae_encoder, vae_decoder, unet + weights;
                        --resolution 256, --chunk 16 or less, --steps DDIM steps), run by
                        ONNX Runtime on CUDA when the backend allows a GPU and the library
                        has it, else the CPU
  --model-weight W      EDTalk's lip strength (default 0.5)
  --onnx-runtime LIB    the ONNX Runtime library (default: ORT_DYLIB_PATH, else the one of an
                        installed onnxruntime / onnxruntime-gpu Python package)
  --progress console|log|json|none   progress sinks, repeatable or comma-separated (default console)
  --progress-file F     write the json events to F instead of stdout (implies --progress json)
  --preview-dir DIR     save the preview images (PPM) there
  --length loop|trim    video/audio length policy (default loop):
                          loop: the output is as long as the audio; a shorter video plays
                                forwards then backwards (ping-pong) until the audio ends,
                                a longer one is cut
                          trim: the output stops at the shorter of video and audio

built-in sample (without --video/--audio):
  --sample-seconds S    length in seconds (default 4)
  --sample-size N       frame width and height in pixels (default 512)
  --sample-dir DIR      where the sample and the default output go (default target/facesync-sample)
  --print-peak-rss      print peak_rss_kib=<peak resident memory> on stdout at the end

Ctrl-C cancels cleanly (exit code 130, no output file left).";

const DEFAULT_SAMPLE_DIR: &str = "target/facesync-sample";

#[derive(Debug, Default)]
struct Args {
    video: Option<PathBuf>,
    audio: Option<PathBuf>,
    out: Option<PathBuf>,
    config: PipelineConfig,
    sinks: Vec<String>,
    progress_file: Option<PathBuf>,
    preview_dir: Option<PathBuf>,
    sample_seconds: Option<f64>,
    sample_size: Option<u32>,
    sample_dir: Option<PathBuf>,
    print_peak_rss: bool,
}

fn parse(args: &[String], caller_dir: &Path) -> Result<Args> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value"))
        };
        let path = |v: String| caller_dir.join(v);
        match flag.as_str() {
            "--video" => a.video = Some(path(value()?)),
            "--audio" => a.audio = Some(path(value()?)),
            "--out" => a.out = Some(path(value()?)),
            "--resolution" => a.config.resolution = value()?.parse().context("--resolution")?,
            "--steps" => a.config.steps = value()?.parse().context("--steps")?,
            "--chunk" => a.config.chunk = value()?.parse().context("--chunk")?,
            "--no-face" => a.config.no_face = value()?.parse().context("--no-face")?,
            "--backend" => a.config.backend = value()?.parse().context("--backend")?,
            "--length" => a.config.length = value()?.parse().context("--length")?,
            "--model" => {
                let spec: ModelSpec = value()?.parse()?;
                a.config.model = match spec {
                    ModelSpec::Wav2Lip(p) => ModelSpec::Wav2Lip(path(p.display().to_string())),
                    ModelSpec::EdTalk(p) => ModelSpec::EdTalk(path(p.display().to_string())),
                    ModelSpec::LatentSync(p) => {
                        ModelSpec::LatentSync(path(p.display().to_string()))
                    }
                    other => other,
                };
            }
            "--model-weight" => {
                a.config.model_weight = value()?.parse().context("--model-weight")?
            }
            "--onnx-runtime" => a.config.onnx_runtime = Some(path(value()?)),
            "--progress" => {
                for s in value()?.split(',') {
                    if !["console", "log", "json", "none"].contains(&s) {
                        bail!("--progress {s}: expected console, log, json or none");
                    }
                    a.sinks.push(s.to_string());
                }
            }
            "--progress-file" => a.progress_file = Some(path(value()?)),
            "--preview-dir" => a.preview_dir = Some(path(value()?)),
            "--sample-seconds" => {
                a.sample_seconds = Some(value()?.parse().context("--sample-seconds")?)
            }
            "--sample-size" => a.sample_size = Some(value()?.parse().context("--sample-size")?),
            "--sample-dir" => a.sample_dir = Some(path(value()?)),
            "--print-peak-rss" => a.print_peak_rss = true,
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    if a.video.is_some() != a.audio.is_some() {
        bail!("give both --video and --audio, or neither (to run on the built-in sample)");
    }
    if a.video.is_some() && a.out.is_none() {
        bail!("--out is required with --video and --audio");
    }
    let sample_option =
        a.sample_seconds.is_some() || a.sample_size.is_some() || a.sample_dir.is_some();
    if a.video.is_some() && sample_option {
        bail!(
            "--sample-seconds, --sample-size and --sample-dir apply to the built-in sample only, not with --video"
        );
    }
    if let Some(s) = a.sample_seconds
        && !(s.is_finite() && s >= 0.04)
    {
        bail!("--sample-seconds {s}: expected at least 0.04 (one frame)");
    }
    if let Some(s) = a.sample_size
        && s < 16
    {
        bail!("--sample-size {s}: expected at least 16");
    }
    if a.sinks.is_empty() {
        a.sinks.push("console".into());
    }
    if a.progress_file.is_some() && !a.sinks.iter().any(|s| s == "json") {
        a.sinks.push("json".into());
    }
    a.config.validate()?;
    Ok(a)
}

fn has_ffmpeg() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the command; `caller_dir` is where the user ran it (their relative paths start there).
pub(crate) fn run(args: &[String], caller_dir: &Path) -> Result<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return Ok(());
    }
    let args = parse(args, caller_dir)?;
    let progress = start_progress(&args)?;
    // Installed before any work, so that Ctrl-C always cancels through the token (and the
    // stages clean up) instead of killing the process half-way through writing a file.
    let token = progress.cancel_token().clone();
    // Ignore the error when a handler exists already (a second run in one process).
    let _ = ctrlc::set_handler(move || token.cancel());
    let result = run_job(&args, &progress);
    progress.shutdown();
    if args.print_peak_rss {
        println!("peak_rss_kib={}", peak_rss_kib().unwrap_or(0));
    }
    match result {
        Ok(summary) => {
            eprintln!(
                "output: {} ({} frames at {} fps, {:.1} s)",
                absolute(&summary.output).display(),
                summary.frames,
                summary.fps,
                summary.elapsed_secs
            );
            Ok(())
        }
        Err(JobError::Cancelled(phase)) => {
            eprintln!("cancelled during {phase}; no output written");
            std::process::exit(130);
        }
        Err(JobError::Failed(e)) => Err(e),
    }
}

/// Why a job did not complete.
enum JobError {
    /// Ctrl-C (or a sink) cancelled the run during this phase.
    Cancelled(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        JobError::Failed(e)
    }
}

/// The progress run with the sinks asked for.
fn start_progress(args: &Args) -> Result<Progress> {
    let mut builder = Progress::builder();
    for sink in &args.sinks {
        builder = match sink.as_str() {
            "console" => builder.sink(sinks::ConsoleSink::stderr()),
            "log" => {
                sinks::init_stderr_log("info");
                builder.sink(sinks::LogSink::new())
            }
            "json" => match &args.progress_file {
                Some(f) => builder.sink(sinks::JsonLinesSink::new(std::io::BufWriter::new(
                    std::fs::File::create(f)
                        .with_context(|| format!("cannot create {}", f.display()))?,
                ))),
                None => builder.sink(sinks::JsonLinesSink::new(std::io::stdout())),
            },
            _ => builder,
        };
    }
    if let Some(dir) = &args.preview_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        builder = builder.sink(preview_writer(dir.clone()));
    }
    Ok(builder.start())
}

/// Makes the sample when no input is given, then runs the pipeline; every phase has ended
/// when this returns.
fn run_job(args: &Args, progress: &Progress) -> Result<Summary, JobError> {
    // Both top-level phases exist from the start, so that the whole-run fraction does not
    // jump back when the job starts after the sample.
    let sample_phase = args
        .video
        .is_none()
        .then(|| progress.phase("Making the sample", None, "frames"));
    let job = progress.phase("Lip sync", None, "frames");
    let (inputs, default_out) = match (&args.video, &args.audio) {
        (Some(video), Some(audio)) => (
            Inputs {
                video: video.clone(),
                audio: audio.clone(),
            },
            None,
        ),
        _ => {
            let sample_dir = args
                .sample_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SAMPLE_DIR));
            let mut spec = pipeline::sample::SampleSpec::default();
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
                    return Err(match e {
                        PipelineError::Cancelled { phase } => JobError::Cancelled(phase),
                        e => anyhow::Error::new(e)
                            .context("cannot write the built-in sample")
                            .into(),
                    });
                }
            };
            let text = format!(
                "sample: {} + {}",
                absolute(&files.video).display(),
                absolute(&files.audio).display()
            );
            // Through the console sink when there is one, so that it prints above the bars.
            if args.sinks.iter().any(|s| s == "console") {
                phase.message(Level::Info, text);
            } else {
                eprintln!("{text}");
            }
            phase.finish();
            let ext = if has_ffmpeg() { "mp4" } else { "y4m" };
            (
                Inputs {
                    video: files.video,
                    audio: files.audio,
                },
                Some(sample_dir.join(format!("lipsync.{ext}"))),
            )
        }
    };
    let Some(out) = args.out.clone().or(default_out) else {
        job.fail("--out is required with --video/--audio");
        return Err(anyhow::anyhow!("--out is required with --video/--audio").into());
    };

    let result = pipeline::run(&args.config, &inputs, &out, &job);
    match &result {
        Ok(_) => job.finish(),
        Err(e) => job.fail(e),
    }
    result.map_err(|e| match e {
        PipelineError::Cancelled { phase } => JobError::Cancelled(phase),
        e => anyhow::Error::new(e)
            .context(format!(
                "lip sync of {} with {} failed",
                inputs.video.display(),
                inputs.audio.display()
            ))
            .into(),
    })
}

/// `path` made absolute (xtask runs from the project root, which may not be the caller's
/// directory).
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
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::{Backend, LengthPolicy, NoFacePolicy};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_options() {
        let a = parse(&args(
            "--video v.y4m --audio a.wav --out o.mp4 --resolution 512 --steps 3 --chunk 8 \
             --no-face interpolate --backend cpu --progress json,console --progress log --length trim",
        ), Path::new("/home/me"))
        .unwrap();
        assert_eq!(a.video.as_deref(), Some(Path::new("/home/me/v.y4m")));
        assert_eq!(a.config.resolution, 512);
        assert_eq!(a.config.steps, 3);
        assert_eq!(a.config.chunk, 8);
        assert_eq!(a.config.no_face, NoFacePolicy::Interpolate);
        assert_eq!(a.config.backend, Backend::Cpu);
        assert_eq!(a.config.length, LengthPolicy::Trim);
        assert_eq!(a.sinks, ["json", "console", "log"]);
    }

    #[test]
    fn rejects_bad_options() {
        for (input, expected) in [
            (
                "--no-face skip",
                "--no-face: unknown no-face policy \"skip\": expected one of pass, error, interpolate",
            ),
            ("--progress bars", "expected console, log, json or none"),
            ("--video v.y4m", "give both --video and --audio"),
            ("--video v.y4m --audio a.wav", "--out is required"),
            ("--steps", "--steps needs a value"),
            ("--frobnicate", "unknown option `--frobnicate`"),
            (
                "--backend tpu",
                "--backend: unknown backend \"tpu\": expected one of auto, gpu, cpu",
            ),
            (
                "--length pingpong",
                "--length: unknown length policy \"pingpong\": expected one of loop, trim",
            ),
            (
                "--resolution 300",
                "resolution 300 is not supported (256 or 512)",
            ),
            ("--chunk 0", "the chunk size must be at least 1"),
            ("--sample-seconds 0", "expected at least 0.04"),
            ("--sample-size 8", "expected at least 16"),
            (
                "--video v.y4m --audio a.wav --out o.y4m --sample-seconds 2",
                "apply to the built-in sample only",
            ),
        ] {
            let err = format!("{:#}", parse(&args(input), Path::new("/")).unwrap_err());
            assert!(err.contains(expected), "{input}: {err}");
        }
    }
}
