//! `cargo xtask bench face [rounds] [--detect-every K] [--passes P] [--gpu-detector]`: the face
//! stage on 1280×720 frames (crates/pipeline/assets/astronaut.png, the 512×512 photo, composited onto grey
//! with a moving similarity: scale 1.0–1.4, roll ±10°, sweeping across the frame; 48 distinct
//! frames, batches of 16), R = 256. The CPU stage (`Compute::Cpu`: the CPU networks on 2
//! threads, CPU warp) with the face mesh (the default) and without it, alternated (A B A B …,
//! one pass over the clip each, `rounds` pairs, default 5), medians reported; then the GPU
//! stage (the adapter's warp; detection per `DetectBackend::Auto`, i.e. the CPU network on a
//! software adapter, or the WGSL network with `--gpu-detector`; mesh on the CPU), and each
//! with detection and warp only (detections replayed from the first run). `--detect-every`
//! and `--passes` set `FaceConfig::detect_every` and `DecodeConfig::refine_passes` (defaults
//! 1 and 8, the library's). Also prints the mesh accuracy table: per eye corner and mouth
//! corner, the worst and mean distance over the clip between the mesh point and where the
//! exact motion puts frame 0's (frame pixels; the clip is placed nearest-neighbour, which alone
//! moves a point by up to half a pixel), smoothed (the stage's default) and unsmoothed. Prints the configuration, the warp-only line, the
//! table, then last `face-bench: cpu_fps=<mesh on> cpu_fps_no_mesh=<off> gpu_fps=<b> …`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use face_proc::{
    DecodeConfig, DetectBackend, Detection, FaceConfig, FaceDetector, FaceError, FaceProcessor,
    Rect, facemesh,
};
use frame::{Affine2, Frame};
use gpu::Compute;
use progress_core::Phase;
use test_kit::known_motion;

const W: u32 = known_motion::WIDTH;
const H: u32 = known_motion::HEIGHT;
const R: u32 = 256;
const DISTINCT: usize = known_motion::FRAMES;
const BATCH: usize = 16;

/// Replays stored detections: the stage without the detector's cost.
struct Replay(Vec<Detection>);

impl FaceDetector for Replay {
    fn detect(
        &mut self,
        index: u64,
        _: &Frame,
        _: Option<Rect>,
    ) -> Result<Vec<Detection>, FaceError> {
        Ok(vec![self.0[index as usize % self.0.len()].clone()])
    }
}

pub(super) fn astronaut() -> Result<Frame> {
    Ok(test_kit::astronaut())
}

/// The clip's frames and their motions (photo → frame): test-kit's known-motion clip.
fn clip() -> Result<(Vec<Frame>, Vec<Affine2>)> {
    let photo = astronaut()?;
    let motions = known_motion::motions();
    let frames = motions
        .iter()
        .map(|t| known_motion::place_nearest(&photo, t))
        .collect();
    Ok((frames, motions))
}

/// The mesh's eye and mouth corners, named.
const MESH_POINTS: [(&str, usize); 6] = [
    ("eye_l_outer", facemesh::idx::EYE_LEFT_OUTER),
    ("eye_l_inner", facemesh::idx::EYE_LEFT_INNER),
    ("eye_r_inner", facemesh::idx::EYE_RIGHT_INNER),
    ("eye_r_outer", facemesh::idx::EYE_RIGHT_OUTER),
    ("mouth_l", facemesh::idx::MOUTH_LEFT),
    ("mouth_r", facemesh::idx::MOUTH_RIGHT),
];

/// The stage's mesh over one pass of the clip.
fn clip_meshes(config: &FaceConfig, frames: &[Frame]) -> Result<Vec<Vec<[f32; 2]>>> {
    let mut stage = FaceProcessor::new(&Compute::Cpu, config.clone())?;
    let phase = Phase::detached("Processing faces", Some(frames.len() as u64), "frames");
    let mut recs = Vec::new();
    for batch in frames.chunks(BATCH) {
        recs.extend(stage.process_batch(batch, &phase)?);
    }
    if let Some(r) = recs.iter().find(|r| r.mesh.is_empty()) {
        bail!("bench frame {} has no mesh", r.index);
    }
    Ok(recs.into_iter().map(|r| r.mesh).collect())
}

/// Worst and mean distance over the clip between mesh point `i` and where the exact motion
/// puts frame 0's.
fn motion_error(meshes: &[Vec<[f32; 2]>], motions: &[Affine2], i: usize) -> [f64; 2] {
    let errs = known_motion::point_errors(meshes, motions, i);
    let worst = errs.iter().copied().fold(0.0, f64::max);
    [worst, errs.iter().sum::<f64>() / errs.len() as f64]
}

/// Prints, per point of [`MESH_POINTS`], the worst and mean distance over one pass of the
/// clip between the reported mesh point and where the exact motion puts frame 0's, with the
/// stage's smoothing (the default) and without it (the network alone); then whether every
/// smoothed point is within the 2 px target.
fn mesh_accuracy(config: &FaceConfig, frames: &[Frame], motions: &[Affine2]) -> Result<()> {
    let smoothed = clip_meshes(config, frames)?;
    let raw = clip_meshes(
        &FaceConfig {
            smoothing: face_proc::Smoothing::None,
            ..config.clone()
        },
        frames,
    )?;
    println!(
        "face-bench mesh accuracy (frame 0 as reference, {} frames {W}x{H}):",
        frames.len()
    );
    println!("  point        idx  worst_px  mean_px  unsmoothed_worst_px  unsmoothed_mean_px");
    let mut all_worst: f64 = 0.0;
    for (name, i) in MESH_POINTS {
        let [worst, mean] = motion_error(&smoothed, motions, i);
        let [raw_worst, raw_mean] = motion_error(&raw, motions, i);
        all_worst = all_worst.max(worst);
        println!(
            "  {name:<12} {i:>3}  {worst:>8.2}  {mean:>7.2}  {raw_worst:>19.2}  {raw_mean:>18.2}"
        );
    }
    println!(
        "face-bench mesh accuracy: worst={all_worst:.2} px target=2.00 px {}",
        if all_worst <= 2.0 { "met" } else { "missed" }
    );
    Ok(())
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `rounds` passes over the clip in batches; frames per second.
fn run_stage(
    stage: &mut FaceProcessor,
    frames: &[Frame],
    rounds: usize,
) -> Result<(f64, Vec<Detection>)> {
    let phase = Phase::detached(
        "Processing faces",
        Some((frames.len() * rounds) as u64),
        "frames",
    );
    let mut dets = Vec::new();
    // Warm-up batch (pipeline compilation, buffer allocation).
    stage.process_batch(&frames[..BATCH], &phase)?;
    let start = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        for batch in frames.chunks(BATCH) {
            for rec in stage.process_batch(batch, &phase)? {
                if !rec.found {
                    bail!("bench frame {} lost the face", rec.index);
                }
                dets.push(Detection {
                    bbox: rec.bbox,
                    landmarks: rec.landmarks,
                    score: rec.score,
                });
            }
            n += batch.len();
        }
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), dets))
}

struct Options {
    rounds: usize,
    detect_every: u32,
    passes: usize,
    gpu_detector: bool,
}

fn options(args: &[String]) -> Result<Options> {
    let defaults = (FaceConfig::default(), DecodeConfig::default());
    let mut o = Options {
        rounds: 5,
        detect_every: defaults.0.detect_every,
        passes: defaults.1.refine_passes,
        gpu_detector: false,
    };
    let mut it = args.iter();
    let number = |flag: &str, v: Option<&String>| -> Result<usize> {
        let v = v.with_context(|| format!("{flag} needs a value"))?;
        v.parse()
            .with_context(|| format!("{flag} `{v}` is not a positive number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--detect-every" => o.detect_every = number(a, it.next())?.try_into()?,
            "--passes" => o.passes = number(a, it.next())?,
            "--gpu-detector" => o.gpu_detector = true,
            s => {
                o.rounds = s
                    .parse()
                    .with_context(|| format!("rounds `{s}` is not a number"))?
            }
        }
    }
    if o.rounds == 0 || o.detect_every == 0 || o.passes == 0 {
        bail!("rounds, --detect-every and --passes must be positive");
    }
    Ok(o)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let rounds = o.rounds;
    let (frames, motions) = clip()?;
    let gpu = gpu::acquire(&gpu::GpuOptions {
        backend: gpu::BackendChoice::Gpu,
        ..gpu::GpuOptions::from_env()
    })
    .map(gpu::Acquired::into_compute)
    .context("face bench needs a wgpu adapter for the GPU column")?;
    let config = FaceConfig {
        resolution: R,
        detect_every: o.detect_every,
        decode: DecodeConfig {
            refine_passes: o.passes,
            ..DecodeConfig::default()
        },
        ..FaceConfig::default()
    };

    // Mesh on (the default) and off, alternated: the machine's load drifts, so each pair
    // sees about the same conditions; medians of the passes.
    let mut cpu = FaceProcessor::new(&Compute::Cpu, config.clone())?;
    let no_mesh = FaceConfig {
        mesh: None,
        ..config.clone()
    };
    let mut cpu_plain = FaceProcessor::new(&Compute::Cpu, no_mesh)?;
    let (mut with, mut without, mut dets) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (fps, d) = run_stage(&mut cpu, &frames, 1)?;
        with.push(fps);
        dets = d;
        without.push(run_stage(&mut cpu_plain, &frames, 1)?.0);
    }
    let (cpu_fps, cpu_plain_fps) = (median(with.clone()), median(without.clone()));
    let gpu_config = FaceConfig {
        detect_backend: if o.gpu_detector {
            DetectBackend::Gpu
        } else {
            DetectBackend::Auto
        },
        ..config.clone()
    };
    let mut on_gpu = FaceProcessor::new(&gpu, gpu_config)?;
    let gpu_detector = if on_gpu.detects_on_gpu() {
        "wgsl"
    } else {
        "cpu"
    };
    let (gpu_fps, _) = run_stage(&mut on_gpu, &frames, rounds)?;

    // `dets[k]` belongs to stream index BATCH + k (after the warm-up batch), i.e. clip frame
    // (BATCH + k) % DISTINCT; the replay is indexed by stream index % DISTINCT.
    let replay: Vec<Detection> = (0..DISTINCT)
        .map(|i| dets[(i + DISTINCT - BATCH) % DISTINCT].clone())
        .collect();
    // Warp only: replayed detections, no mesh.
    let warp_only = FaceConfig {
        mesh: None,
        ..config.clone()
    };
    let mut cpu_warp = FaceProcessor::with_detector(
        &Compute::Cpu,
        warp_only.clone(),
        Box::new(Replay(replay.clone())),
    )?;
    let (cpu_warp_fps, _) = run_stage(&mut cpu_warp, &frames, rounds)?;
    let config_for_accuracy = config;
    let mut gpu_warp = FaceProcessor::with_detector(&gpu, warp_only, Box::new(Replay(replay)))?;
    let (gpu_warp_fps, _) = run_stage(&mut gpu_warp, &frames, rounds)?;

    let adapter = gpu.name().replace(' ', "_");
    println!(
        "face-bench config: frames={W}x{H} distinct={DISTINCT} pairs={rounds} batch={BATCH} detect_every={} passes={} mesh=cpu cpu_detector=cpu gpu_detector={gpu_detector}",
        o.detect_every, o.passes
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|f| format!("{f:.1}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "face-bench passes: mesh_on=[{}] mesh_off=[{}]",
        list(&with),
        list(&without)
    );
    println!(
        "face-bench warp-only: cpu_fps={cpu_warp_fps:.1} gpu_fps={gpu_warp_fps:.1} adapter={adapter} R={R} frames={W}x{H}"
    );
    mesh_accuracy(&config_for_accuracy, &frames, &motions)?;
    println!(
        "face-bench: cpu_fps={cpu_fps:.1} cpu_fps_no_mesh={cpu_plain_fps:.1} gpu_fps={gpu_fps:.1} adapter={adapter} R={R}"
    );
    Ok(())
}
