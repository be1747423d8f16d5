//! `cargo xtask bench infer`: the inference stage's built-in model (`infer::MouthModel`) at
//! R = 256, 20 steps, chunks of 16, on the CPU (all cores) and on the GPU adapter side by side,
//! on the astronaut's face with speech-like audio generated in code. Prints one line per path,
//! then last `infer-bench: cpu_fps=<a> gpu_fps=<b> adapter=<name> R=256 steps=20`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use frame::Frame;
use gpu::{BackendChoice, Compute, GpuOptions};
use infer::{AudioFeatures, ChunkExtras, InferConfig, Inferencer, MouthModel, MouthParams};
use progress_core::Phase;

const R: u32 = 256;
const STEPS: usize = 20;
const CHUNK: usize = 16;
const FPS: f64 = 25.0;
const FRAMES: usize = 96;

/// Voiced syllables (160 Hz pulse-train harmonics under three formants), 4 per second,
/// 44.1 kHz stereo.
fn speech(secs: f64) -> Vec<f32> {
    let rate = 44_100.0;
    let n = (secs * rate) as usize;
    let formant = |f: f64| {
        [(700.0, 130.0), (1200.0, 150.0), (2600.0, 250.0)]
            .iter()
            .map(|&(fc, bw): &(f64, f64)| 1.0 / (1.0 + ((f - fc) / bw).powi(2)))
            .sum::<f64>()
    };
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / rate;
            let on = if t.rem_euclid(0.25) < 0.15 { 1.0 } else { 0.0 };
            let v: f64 = (1..25)
                .map(|k| {
                    let f = 160.0 * k as f64;
                    formant(f) / k as f64 * (2.0 * std::f64::consts::PI * f * t).sin()
                })
                .sum();
            let s = (0.12 * v * on) as f32;
            [s, s]
        })
        .collect()
}

/// Frames per second of the whole stage (features given) on `compute`.
fn measure(compute: Compute, faces: &[Frame], audio: &AudioFeatures) -> Result<f64> {
    let model = MouthModel::new(compute, MouthParams::default());
    let config = InferConfig {
        chunk_size: CHUNK,
        steps: STEPS,
        ..InferConfig::default()
    };
    let mut inferencer = Inferencer::new(model, config);
    let phase = Phase::detached("Doing inference", Some(faces.len() as u64), "frames");
    // Warm-up: pipelines, buffers, thread start-up.
    inferencer.run_chunk(&faces[..CHUNK], 0, audio, ChunkExtras::default(), &phase)?;
    let start = Instant::now();
    let out = inferencer.run(faces, audio, &phase)?;
    let secs = start.elapsed().as_secs_f64();
    if out.len() != faces.len() {
        bail!("{} faces in, {} out", faces.len(), out.len());
    }
    Ok(faces.len() as f64 / secs)
}

/// `cargo xtask bench infer` (no arguments).
pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("bench infer takes no arguments, got `{extra}`");
    }
    let face = test_kit::astronaut_face(R);
    let faces = vec![face; FRAMES];
    let samples = speech(FRAMES as f64 / FPS);
    let t = Instant::now();
    let audio = AudioFeatures::from_samples(&samples, 2, 44_100, FPS, FRAMES)?;
    let feature_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "infer features: {:.1} ms for {:.2} s of 44.1 kHz stereo audio ({FRAMES} frames)",
        feature_ms,
        FRAMES as f64 / FPS
    );
    let cpu_fps = measure(Compute::Cpu, &faces, &audio)?;
    println!(
        "infer cpu: {cpu_fps:.1} frames/s ({FRAMES} frames, R={R}, steps={STEPS}, chunk={CHUNK})"
    );
    let opts = GpuOptions {
        backend: BackendChoice::Gpu,
        ..GpuOptions::from_env()
    };
    let compute = gpu::acquire(&opts)
        .map(gpu::Acquired::into_compute)
        .context("no GPU adapter for the GPU side")?;
    let adapter = compute.name().replace(' ', "_");
    let gpu_fps = measure(compute, &faces, &audio)?;
    println!("infer gpu: {gpu_fps:.1} frames/s on {adapter}");
    println!(
        "infer-bench: cpu_fps={cpu_fps:.1} gpu_fps={gpu_fps:.1} adapter={adapter} R={R} steps={STEPS}"
    );
    Ok(())
}
