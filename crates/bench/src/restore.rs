//! `cargo xtask bench restore`: pastes an R=256 face back into 1280×720 frames (the astronaut
//! photo placed in a grey canvas) on the CPU path and the GPU path, side by side.
//!
//! Both restorers get the same 64 frames in batches of 16 (one batch = one GPU submit and one
//! readback); the best of 5 rounds counts. The GPU column is `n/a` when no adapter exists
//! (then `adapter=cpu`). The two outputs are also compared, so a fast but wrong GPU path shows.

use std::time::Instant;

use anyhow::{Context, Result};
use frame::{Affine2, Frame};
use restore::{FacePaste, RestoreConfig, Restorer};

const R: u32 = 256;
const FRAMES: usize = 64;
const ROUNDS: usize = 5;
const BATCH: usize = 16;

/// The photo at (384, 104) in a 1280×720 grey canvas.
fn canvas(photo: &Frame) -> Frame {
    let mut out = Frame::filled(1280, 720, [90, 90, 90]);
    for y in 0..photo.height() {
        for x in 0..photo.width() {
            out.put_pixel(x + 384, y + 104, photo.pixel(x, y));
        }
    }
    out
}

/// Frame → R×R map: the square of side `side` centred on `centre`, rotated by `angle`.
fn to_crop(centre: [f64; 2], side: f64, angle: f64) -> Affine2 {
    test_kit::square_crop(R, centre, side, angle)
}

/// Nearest-neighbour crop (the bench only needs plausible face pixels).
fn crop(frame: &Frame, t: &Affine2) -> Result<Frame> {
    let inv = t.inverse().context("singular transform")?;
    let mut out = Frame::filled(R, R, [127, 127, 127]);
    for y in 0..R {
        for x in 0..R {
            let p = inv.apply([f64::from(x), f64::from(y)]);
            let (u, v) = (p[0].round(), p[1].round());
            if u >= 0.0 && v >= 0.0 && u < f64::from(frame.width()) && v < f64::from(frame.height())
            {
                out.put_pixel(x, y, frame.pixel(u as u32, v as u32));
            }
        }
    }
    Ok(out)
}

/// Best frames/s over `ROUNDS` rounds, and the frames of the last round.
fn measure(
    restorer: &mut Restorer,
    frame: &Frame,
    faces: &[Option<FacePaste>],
) -> Result<(f64, Vec<Frame>)> {
    let phase = progress_core::Phase::detached("Restoring faces", None, "frames");
    let mut best = f64::INFINITY;
    let mut frames = Vec::new();
    for _ in 0..ROUNDS {
        frames = vec![frame.clone(); faces.len()];
        let start = Instant::now();
        restorer.restore_batch(&mut frames, faces, &phase)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((faces.len() as f64 / best, frames))
}

/// Pixels (of all frames) whose channels differ by more than 1 LSB, and the pixel count.
fn off_by_more_than_one(a: &[Frame], b: &[Frame]) -> (usize, usize) {
    let mut off = 0;
    let mut n = 0;
    for (fa, fb) in a.iter().zip(b) {
        for (pa, pb) in fa.data().chunks_exact(3).zip(fb.data().chunks_exact(3)) {
            n += 1;
            off += usize::from(pa.iter().zip(pb).any(|(x, y)| x.abs_diff(*y) > 1));
        }
    }
    (off, n)
}

pub(crate) fn run(_args: &[String]) -> Result<()> {
    let frame = canvas(&test_kit::astronaut());
    // Face at about (173, 68) 99×99 in the photo; slight rotation so the warp is general.
    let t = to_crop([222.0 + 384.0, 117.0 + 104.0], 160.0, 0.1);
    let face = crop(&frame, &t)?;
    let faces: Vec<Option<FacePaste>> = (0..FRAMES)
        .map(|_| {
            Some(FacePaste {
                face: face.clone(),
                to_crop: t,
                mask: None,
                weights: None,
            })
        })
        .collect();
    let cfg = RestoreConfig {
        batch: BATCH,
        threads: 0,
    };
    let mut cpu = Restorer::new(gpu::Compute::Cpu, cfg.clone())?;
    let (cpu_fps, cpu_frames) = measure(&mut cpu, &frame, &faces)?;
    let opts = gpu::GpuOptions {
        backend: gpu::BackendChoice::Gpu,
        ..gpu::GpuOptions::from_env()
    };
    let compute = gpu::acquire(&opts)
        .map(gpu::Acquired::into_compute)
        .context("no GPU adapter for the GPU side")?;
    let adapter = compute.name().replace(' ', "_");
    let mut gpu_restorer = Restorer::new(compute, cfg)?;
    let gpu_fps = if gpu_restorer.uses_gpu() {
        let (fps, gpu_frames) = measure(&mut gpu_restorer, &frame, &faces)?;
        let (off, n) = off_by_more_than_one(&cpu_frames, &gpu_frames);
        println!("restore-bench: gpu vs cpu: {off} of {n} pixels differ by more than 1 LSB");
        anyhow::ensure!(
            off * 1000 <= n,
            "the GPU output differs from the CPU output on {off} of {n} pixels"
        );
        format!("{fps:.1}")
    } else {
        "n/a".to_owned()
    };
    println!(
        "restore-bench: {FRAMES} frames 1280x720, best of {ROUNDS} rounds, batch {BATCH}, \
         {} cpu threads",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("restore-bench: cpu_fps={cpu_fps:.1} gpu_fps={gpu_fps} adapter={adapter} R={R}");
    Ok(())
}
