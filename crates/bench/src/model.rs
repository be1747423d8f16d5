//! `cargo xtask bench model`: facesync's whole pipeline with a learned model (the generated
//! Wav2Lip-96, batch 1, random weights, the published layer structure) against a per-frame
//! Python loop doing what FaceFusion's lip syncer does per frame (`model_loop.py`:
//! onnxruntime, numpy), on the same file, the same clip (the built-in sample, 256×256, 4 s at
//! 25 fps) and the same number of ONNX Runtime threads (one per core: the loop's one session
//! with ONNX Runtime's default intra-op threads; facesync's two sessions, whose batch-of-1
//! calls run side by side, with half the cores each), alternated in one run (3 rounds each
//! after a warm-up), medians.
//!
//! - `facesync_fps`: output frames over the wall-clock time of `pipeline::run` (decode, face
//!   detection and alignment, Wav2Lip, restore, Y4M encode), no sinks.
//! - `loop_fps`: frames over the loop's time (decoded frames in memory, mel spectrogram,
//!   per-frame crop, model call, paste); it is given the face box, not detecting faces.
//!
//! Each round also runs the loop a second time doing FaceFusion's per-frame face analysis
//! too: BlazeFace and FaceMesh (facesync's own detector and landmarker files, standing in for
//! FaceFusion's, whose weights are not available here) in onnxruntime on every frame, the
//! Wav2Lip box from the landmarks (see `model_loop.py`). A line before the result,
//! `model-bench-detect: loop_detect_fps=<d> ratio_detect=<facesync_fps/d> bound_ratio_detect=<calls_only_fps/d>`,
//! gives its medians.
//! - `model_share`: the time facesync's sessions spend inside model calls over the wall time
//!   times the number of sessions (1.00: every session busy all the time; on the CPU a batch of
//!   1 runs two single-threaded sessions side by side, see `pipeline::session_options`).
//!
//! - `provider`: the execution provider facesync's session runs on.
//!
//! Each round also prints the time per model call on both sides, and times the model calls
//! alone: facesync's sessions called back to back, one thread per session, with one frame's
//! inputs and nothing else running, for as many calls as the clip has frames. A line before
//! the result, `model-bound: calls_only_fps=<c> bound_ratio=<c/loop_fps>`, gives that rate
//! (medians) and the ratio facesync would reach if everything around the model (decode,
//! detection, crops, paste, encode) cost nothing: the bound on `ratio` that ONNX Runtime's
//! speed on this file sets.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pipeline::media_io::{ReaderOptions, VideoReader};
use pipeline::sample::{SampleSpec, write_sample};
use pipeline::{Inputs, ModelSpec, PipelineConfig, RunOptions};
use progress_core::Progress;

const SIZE: u32 = 256;
const ROUNDS: usize = 3;

pub(crate) fn run(_args: &[String]) -> Result<()> {
    let python = test_kit::python::environment().map_err(anyhow::Error::msg)?;
    let library = test_kit::python::onnx_runtime(&python).map_err(anyhow::Error::msg)?;
    let dir = std::path::absolute("target/facesync-bench/model")?;
    let models = test_kit::models::generate_with(&python, &dir.join("models"))
        .map_err(anyhow::Error::msg)?;
    let model = models.dir.join("wav2lip_96.onnx");
    let spec = SampleSpec {
        width: SIZE,
        height: SIZE,
        seconds: 4.0,
        ..SampleSpec::default()
    };
    let files = write_sample(&dir.join("clip"), &spec).context("cannot write the sample")?;
    let inputs = Inputs {
        video: files.video,
        audio: files.audio,
    };
    // The loop reads the decoded frames (its decode is not timed, facesync's is).
    let frames_path = dir.join("frames.rgb");
    let mut reader = VideoReader::open(&inputs.video, &ReaderOptions::default())?;
    let mut raw = Vec::new();
    let mut n = 0u32;
    while let Some(f) = reader.next_frame()? {
        raw.extend_from_slice(f.data());
        n += 1;
    }
    std::fs::write(&frames_path, raw)?;
    let config = PipelineConfig {
        options: RunOptions {
            model: ModelSpec::Wav2Lip(model.clone()),
            ..RunOptions::default()
        },
        onnx_runtime: Some(library),
        ..PipelineConfig::default()
    };
    let out = dir.join("out.y4m");
    facesync_round(&config, &inputs, &out)?; // warm-up: loads the model once

    // The loop's face box: facesync's Wav2Lip box on the sample's first frame would need
    // the detector; the sample's face is centred, so the loop gets a fixed box around it.
    let b = [0.36, 0.13, 0.64, 0.38].map(|v: f32| v * SIZE as f32);
    let script = dir.join("model_loop.py");
    std::fs::write(&script, include_str!("model_loop.py"))?;
    let mut facesync = Vec::new();
    let mut looped = Vec::new();
    let mut shares = Vec::new();
    let mut calls_only = Vec::new();
    let mut looped_detect = Vec::new();
    let networks = [
        "crates/face-net/assets/blazeface/face_detection_front_128x128_barracuda.onnx",
        "crates/face-net/assets/facemesh/face_landmark.onnx",
    ]
    .iter()
    .map(std::path::absolute)
    .collect::<std::io::Result<Vec<_>>>()?;
    // One run of the loop, with `extra` arguments: (seconds, seconds inside the model calls).
    let run_loop = |extra: &[std::path::PathBuf]| -> Result<(f64, f64)> {
        let out = Command::new(&python)
            .arg(&script)
            .arg(&model)
            .arg(&frames_path)
            .args([SIZE.to_string(), SIZE.to_string(), n.to_string()])
            .arg(&inputs.audio)
            .arg("25")
            .args(b.map(|v| v.to_string()))
            .arg("1")
            .args(extra)
            .output()
            .context("cannot run the Python loop")?;
        if !out.status.success() {
            bail!(
                "the Python loop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |key: &str| -> Result<f64> {
            text.lines()
                .find_map(|l| l.split(key).nth(1))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("no {key} in the loop's output {text:?}"))
        };
        Ok((field(" secs=")?, field(" model_secs=")?))
    };
    let mut provider = String::new();
    for _ in 0..ROUNDS {
        let (fps, share, per_call, p) = facesync_round(&config, &inputs, &out)?;
        println!(
            "facesync: {fps:.2} fps, model share {share:.3}, {:.1} ms per model call",
            per_call * 1e3
        );
        facesync.push(fps);
        shares.push(share);
        provider = p;
        let (secs, model_secs) = run_loop(&[])?;
        println!(
            "loop: {:.2} fps, {:.1} ms per model call",
            f64::from(n) / secs,
            model_secs / f64::from(n) * 1e3
        );
        looped.push(f64::from(n) / secs);
        let (secs, model_secs) = run_loop(&networks)?;
        println!(
            "loop with face analysis: {:.2} fps, {:.1} ms per model call",
            f64::from(n) / secs,
            model_secs / f64::from(n) * 1e3
        );
        looped_detect.push(f64::from(n) / secs);
        let c = calls_only_round(&config, n)?;
        println!("model calls alone: {c:.2} calls per second");
        calls_only.push(c);
    }
    let (a, b) = (median(&mut facesync), median(&mut looped));
    let c = median(&mut calls_only);
    println!(
        "model-bound: calls_only_fps={c:.2} bound_ratio={:.2}",
        c / b
    );
    let d = median(&mut looped_detect);
    println!(
        "model-bench-detect: loop_detect_fps={d:.2} ratio_detect={:.2} bound_ratio_detect={:.2}",
        a / d,
        c / d
    );
    println!(
        "model-bench: facesync_fps={a:.2} loop_fps={b:.2} ratio={:.2} provider={provider} model_share={:.2}",
        a / b,
        median(&mut shares)
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One timed run: frames per second, the sessions' share of time in model calls, seconds per
/// model call, the provider.
fn facesync_round(
    config: &PipelineConfig,
    inputs: &Inputs,
    out: &Path,
) -> Result<(f64, f64, f64, String)> {
    // The sessions `pipeline::run` uses (the process-wide cache returns the same ones).
    let path = config.options.model.path().context("a learned model")?;
    let session = onnx_models::session::load(&pipeline::session_options(config, path))?;
    let (calls_before, before) = session.call_stats();
    let progress = Progress::builder().start();
    let job = progress.phase("Lip sync", None, "frames");
    let start = Instant::now();
    let summary = pipeline::run(config, inputs, out, &job)?;
    let secs = start.elapsed().as_secs_f64();
    job.finish();
    drop(job);
    progress.shutdown();
    let (calls_after, after) = session.call_stats();
    let model_secs = (after - before).as_secs_f64();
    Ok((
        summary.frames as f64 / secs,
        model_secs / (secs * session.parallel() as f64),
        model_secs / (calls_after - calls_before).max(1) as f64,
        session.provider().to_string(),
    ))
}

/// Model calls per second with nothing else running: `frames` calls of one Wav2Lip input on
/// the sessions `pipeline::run` uses, one thread per session, all sessions busy.
fn calls_only_round(config: &PipelineConfig, frames: u32) -> Result<f64> {
    let path = config.options.model.path().context("a learned model")?;
    let session = onnx_models::session::load(&pipeline::session_options(config, path))?;
    let threads = session.parallel();
    let per_thread = (frames as usize).div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let session = &session;
                s.spawn(move || -> Result<()> {
                    for _ in 0..per_thread {
                        session.run_f32(vec![
                            ("source", vec![1, 1, 80, 16], vec![0.0; 80 * 16]),
                            ("target", vec![1, 6, 96, 96], vec![0.5; 6 * 96 * 96]),
                        ])?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a model-call thread panicked"))
    })?;
    Ok((per_thread * threads) as f64 / start.elapsed().as_secs_f64())
}
