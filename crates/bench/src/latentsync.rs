//! `cargo xtask bench latentsync`: the LatentSync model's per-step overhead on stand-in graphs
//! (the export's four contracts with a little arithmetic inside, written by
//! `crates/onnx-models/tests/latentsync/standins.py` with the test environment's Python, the
//! one `cargo xtask test` makes and fills, made here when missing) under that environment's
//! ONNX Runtime on the CPU: 64 frames of 256×256 faces, 20 DDIM steps, guidance 1.5. Overhead
//! is all the per-step work outside the UNet call (f16 conversion of the latents, guidance, the DDIM
//! update, the scheduler's cancel check and progress). Prints last
//! `latentsync-bench: steps=<UNet calls> overhead_ms_per_step=<x> unet_share=<UNet time / step time>`.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use frame::Frame;
use infer::{AudioFeatures, ChunkExtras, InferConfig, Inferencer, LipSyncModel};
use onnx_models::latentsync::{FACE_SIZE, LatentSync, LatentSyncOptions};
use progress_core::Phase;

const FRAMES: usize = 64;
const STEPS: usize = 20;
const FPS: f64 = 25.0;

fn face(i: usize) -> Result<Frame> {
    let n = FACE_SIZE as usize;
    let data = (0..n * n * 3)
        .map(|k| ((k / 3 % n) * 3 + (k / 3 / n) * 5 + (k % 3) * 40 + i * 7) as u8)
        .collect();
    Ok(Frame::new(FACE_SIZE, FACE_SIZE, data)?)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask bench latentsync");
    }
    let dir =
        std::env::temp_dir().join(format!("facesync-latentsync-bench-{}", std::process::id()));
    let py = test_kit::python::environment().map_err(anyhow::Error::msg)?;
    let library = test_kit::python::onnx_runtime(&py).map_err(anyhow::Error::msg)?;
    let status = Command::new(&py)
        .arg("crates/onnx-models/tests/latentsync/standins.py")
        .arg(&dir)
        .status()
        .with_context(|| format!("cannot run {}", py.display()))?;
    if !status.success() {
        bail!("{} standins.py failed ({status})", py.display());
    }
    let result = measure(&dir, library);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(dir: &std::path::Path, library: std::path::PathBuf) -> Result<()> {
    let mut options = LatentSyncOptions::default();
    options.session.runtime = Some(library);
    let model = LatentSync::open(dir, &options)?;
    let rate = 16_000u32;
    let secs = FRAMES as f64 / FPS;
    let samples: Vec<f32> = (0..(secs * f64::from(rate)) as usize)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (0.4 * (t * 4.0 * std::f64::consts::PI).sin().abs()
                * (2.0 * std::f64::consts::PI * 160.0 * t).sin()) as f32
        })
        .collect();
    let mut audio = model
        .feature_builder(1, rate)?
        .context("latentsync builds its own features")?;
    audio.push(&samples)?;
    let features = audio.finish(FPS, FRAMES)?;
    let faces = (0..FRAMES).map(face).collect::<Result<Vec<_>>>()?;
    let builtin = AudioFeatures::from_samples(&samples, 1, rate, FPS, FRAMES)?;
    let config = InferConfig {
        steps: STEPS,
        ..InferConfig::default()
    };
    let mut inf = Inferencer::new(model, config);
    // Warm-up (session allocations, first runs), not counted.
    let warm_up = Phase::detached("warm-up", None, "frames");
    let extras = ChunkExtras::with_features(features.as_ref());
    inf.run_chunk(&faces[..16], 0, &builtin, extras, &warm_up)?;
    let before = inf.model().stats();
    let phase = Phase::detached("Doing inference", Some(FRAMES as u64), "frames");
    let t0 = Instant::now();
    let mut out = Vec::with_capacity(FRAMES);
    for (k, chunk) in faces.chunks(16).enumerate() {
        out.extend(inf.run_chunk(chunk, 16 * k, &builtin, extras, &phase)?);
    }
    let wall = t0.elapsed().as_secs_f64();
    if out.len() != FRAMES {
        bail!("{} frames out of {FRAMES}", out.len());
    }
    let after = inf.model().stats();
    let calls = after.unet_calls - before.unet_calls;
    let unet = after.unet_secs - before.unet_secs;
    let overhead = after.overhead_secs - before.overhead_secs;
    println!(
        "latentsync: {FRAMES} frames, {calls} UNet calls in {wall:.2} s ({:.2} frames/s); \
         UNet {:.2} ms per call, overhead {:.3} ms per step",
        FRAMES as f64 / wall,
        unet * 1e3 / calls as f64,
        overhead * 1e3 / calls as f64
    );
    println!(
        "latentsync-bench: steps={calls} overhead_ms_per_step={:.3} unet_share={:.3}",
        overhead * 1e3 / calls as f64,
        unet / (unet + overhead)
    );
    Ok(())
}
