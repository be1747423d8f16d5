//! Restoration tests on the astronaut photo (`test_kit::astronaut`, public domain,
//! face at about x 173, y 68, 99×99).

use frame::{Affine2, Frame};
use progress_core::Phase;

use crate::cpu::{self, Scratch};
use crate::mask::{self, Plan, Rect};
use crate::{FacePaste, PasteMask, RestoreConfig, RestoreError, Restorer};

const R: u32 = 256;

use test_kit::astronaut;

/// Frame → R×R map: the square of side `side` centred on `centre`, rotated by `angle`.
fn to_crop(centre: [f64; 2], side: f64, angle: f64) -> Affine2 {
    test_kit::square_crop(R, centre, side, angle)
}

/// What face-proc does: bilinear warp of the frame into R×R, border 127.
fn warp_crop(frame: &Frame, to_crop: &Affine2) -> Frame {
    let inv = to_crop.inverse().unwrap().to_f32();
    let mut out = vec![0u8; (R * R * 3) as usize];
    for y in 0..R {
        for x in 0..R {
            let (u, v) = mask::map(&inv, x as f32, y as f32);
            let p = sample_frame(frame, u, v);
            let i = ((y * R + x) * 3) as usize;
            for c in 0..3 {
                out[i + c] = (p[c] + 0.5).floor() as u8;
            }
        }
    }
    Frame::new(R, R, out).unwrap()
}

fn sample_frame(frame: &Frame, u: f32, v: f32) -> [f32; 3] {
    // Border 127 outside a non-square frame: reuse the square sampler on a padded copy is
    // overkill; do it directly.
    let (w, h) = (frame.width() as i64, frame.height() as i64);
    let (x0, y0) = (u.floor(), v.floor());
    let (fx, fy) = (u - x0, v - y0);
    let t = |x: i64, y: i64, c: usize| {
        if x < 0 || y < 0 || x >= w || y >= h {
            127.0
        } else {
            f32::from(frame.data()[((y * w + x) * 3) as usize + c])
        }
    };
    let (xi, yi) = (x0 as i64, y0 as i64);
    std::array::from_fn(|c| {
        let top = t(xi, yi, c) * (1.0 - fx) + t(xi + 1, yi, c) * fx;
        let bot = t(xi, yi + 1, c) * (1.0 - fx) + t(xi + 1, yi + 1, c) * fx;
        top * (1.0 - fy) + bot * fy
    })
}

/// The CPU path's plan of `paste` on `frame` and its soft mask: the region, and the scratch
/// that holds the mask (`cpu::soft_for_tests`); `None` when the face misses the frame.
fn soft_region(frame: &Frame, paste: &FacePaste) -> Option<(Plan, Rect, Scratch)> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let plan = mask::plan(0, frame, paste).unwrap()?;
    let mut s = Scratch::default();
    let roi = cpu::soft_mask(&plan, w, h, &mut s);
    Some((plan, roi, s))
}

/// The soft mask over the whole frame (0 outside the region).
fn full_soft_mask(frame: &Frame, paste: &FacePaste) -> Vec<f32> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut soft = vec![0.0; w * h];
    let Some((_, roi, s)) = soft_region(frame, paste) else {
        return soft;
    };
    let plan_soft = cpu::soft_for_tests(&s);
    for y in roi.y0..roi.y1 {
        for x in roi.x0..roi.x1 {
            soft[y * w + x] = plan_soft[(y - roi.y0) * roi.width() + (x - roi.x0)];
        }
    }
    soft
}

fn restorer(compute: gpu::Compute, batch: usize) -> Restorer {
    Restorer::new(compute, RestoreConfig { batch, threads: 2 }).unwrap()
}

/// Restores `frames` with `r` in one call; every frame counts once on the phase.
fn restore_with(r: &mut Restorer, frames: &mut [Frame], faces: &[Option<FacePaste>]) {
    let phase = Phase::detached("Restoring faces", Some(frames.len() as u64), "frames");
    r.restore_batch(frames, faces, &phase).unwrap();
    assert_eq!(phase.pos(), frames.len() as u64);
}

fn restore_cpu(frames: &mut [Frame], faces: &[Option<FacePaste>]) {
    restore_with(&mut restorer(gpu::Compute::Cpu, 2), frames, faces);
}

/// A face pasted at the square of side `side` centred on `centre`, rotated by `angle`.
fn paste(face: Frame, centre: [f64; 2], side: f64, angle: f64) -> FacePaste {
    FacePaste {
        face,
        to_crop: to_crop(centre, side, angle),
        mask: None,
        weights: None,
    }
}

/// `frame`'s own crop at that square, as face-proc cuts it: pasting it back should change
/// little.
fn own_crop(frame: &Frame, centre: [f64; 2], side: f64, angle: f64) -> FacePaste {
    let t = to_crop(centre, side, angle);
    FacePaste {
        face: warp_crop(frame, &t),
        to_crop: t,
        mask: None,
        weights: None,
    }
}

/// PSNR over pixels where `soft >= min_soft`, and the count of changed pixels where soft == 0.
fn compare(original: &Frame, restored: &Frame, soft: &[f32], min_soft: f32) -> (f64, usize) {
    let mut se = 0.0;
    let mut n = 0usize;
    let mut changed_outside = 0;
    for (i, &s) in soft.iter().enumerate() {
        let a = &original.data()[i * 3..i * 3 + 3];
        let b = &restored.data()[i * 3..i * 3 + 3];
        if s <= 0.0 {
            changed_outside += usize::from(a != b);
        } else if s >= min_soft {
            for c in 0..3 {
                se += (f64::from(a[c]) - f64::from(b[c])).powi(2);
            }
            n += 3;
        }
    }
    if n == 0 {
        return (f64::NAN, changed_outside);
    }
    let mse = se / n as f64;
    (
        10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10(),
        changed_outside,
    )
}

/// Pastes the photo's own crop back with `r`: nothing outside the soft mask changes and the
/// PSNR where it is positive is at least 38 dB. The crop is at the astronaut's face (x
/// 173..272, y 68..167: centre (222, 117)), side 1.6 × the face.
fn check_round_trip(r: &mut Restorer, angle: f64) {
    let original = astronaut();
    let paste = own_crop(&original, [222.0, 117.0], 160.0, angle);
    let soft = full_soft_mask(&original, &paste);
    let mut frames = vec![original.clone()];
    restore_with(r, &mut frames, &[Some(paste)]);
    let (psnr, changed_outside) = compare(&original, &frames[0], &soft, 1e-6);
    assert_eq!(changed_outside, 0, "pixels outside the mask changed");
    assert!(psnr >= 38.0, "PSNR {psnr:.2} dB < 38 (angle {angle})");
}

#[test]
fn round_trip_upright_and_rotated() {
    let mut r = restorer(gpu::Compute::Cpu, 2);
    for angle in [0.0, 0.3, -1.0] {
        check_round_trip(&mut r, angle);
    }
}

#[test]
fn flat_face_has_a_feathered_seam() {
    // Flat frame 100, flat face 200: any neighbour step comes from the mask gradient. A
    // convex mask eroded then blurred by a normalised separable Gaussian changes by at most
    // the largest kernel tap g_max between neighbours, so the step is at most
    // ceil(g_max * 100) + 1 (rounding); without the feather it would be 100.
    let frame = Frame::filled(400, 300, [100, 100, 100]);
    let paste = paste(
        Frame::filled(R, R, [200, 200, 200]),
        [200.0, 150.0],
        170.0,
        0.2,
    );
    let (plan, roi, _) = soft_region(&frame, &paste).unwrap();
    let w_edge = (roi.x0 as isize - plan.bbox.x0 as isize).unsigned_abs();
    assert!(w_edge >= 5, "expected a real feather, w_edge {w_edge}");
    let g_max = mask::gaussian_kernel(2 * w_edge + 1)
        .into_iter()
        .fold(0.0f32, f32::max);
    let bound = (g_max * 100.0).ceil() as i32 + 1;
    let mut frames = vec![frame];
    restore_cpu(&mut frames, &[Some(paste)]);
    let out = &frames[0];
    let mut max_step = 0;
    for y in 0..299 {
        for x in 0..399 {
            let p = i32::from(out.pixel(x, y)[0]);
            max_step = max_step
                .max((p - i32::from(out.pixel(x + 1, y)[0])).abs())
                .max((p - i32::from(out.pixel(x, y + 1)[0])).abs());
        }
    }
    assert_eq!(out.pixel(200, 150), [200, 200, 200], "face centre");
    assert_eq!(out.pixel(5, 5), [100, 100, 100], "far outside");
    assert!(
        max_step <= bound,
        "max step {max_step} > bound {bound} (w_edge {w_edge})"
    );
}

#[test]
fn face_crossing_the_frame_border() {
    // Face centred near the top-left corner: the erosion must not eat in from the frame edge.
    let frame = Frame::filled(300, 200, [10, 10, 10]);
    let white = || Frame::filled(R, R, [250, 250, 250]);
    let corner = paste(white(), [20.0, 10.0], 120.0, 0.1);
    let soft = full_soft_mask(&frame, &corner);
    let mut frames = vec![frame.clone()];
    restore_cpu(&mut frames, &[Some(corner)]);
    assert_eq!(
        frames[0].pixel(0, 0),
        [250, 250, 250],
        "corner inside the face"
    );
    assert_eq!(
        frames[0].pixel(15, 0),
        [250, 250, 250],
        "top edge inside the face"
    );
    let (_, changed_outside) = compare(&frame, &frames[0], &soft, 2.0);
    assert_eq!(changed_outside, 0);
    assert_eq!(frames[0].pixel(299, 199), [10, 10, 10]);
    // Entirely outside: untouched.
    let away = paste(white(), [-500.0, -500.0], 100.0, 0.0);
    let mut frames = vec![frame.clone()];
    restore_cpu(&mut frames, &[Some(away)]);
    assert_eq!(frames[0], frame);
}

#[test]
fn tiny_face_uses_the_3x3_default_erosion_and_no_blur() {
    let frame = astronaut();
    // 14 px face: mask area ~196 -> sqrt 14 -> w_edge 0.
    let paste = paste(Frame::filled(R, R, [0, 255, 0]), [222.0, 117.0], 14.0, 0.0);
    let (plan, roi, _) = soft_region(&frame, &paste).unwrap();
    assert_eq!(roi, plan.bbox, "w_edge 0: no padding");
    let soft = full_soft_mask(&frame, &paste);
    let mut frames = vec![frame.clone()];
    restore_cpu(&mut frames, &[Some(paste)]);
    assert_eq!(frames[0].pixel(222, 117), [0, 255, 0]);
    let (_, changed_outside) = compare(&frame, &frames[0], &soft, 2.0);
    assert_eq!(changed_outside, 0);
    let changed = (0..512 * 512)
        .filter(|i| frame.data()[i * 3..i * 3 + 3] != frames[0].data()[i * 3..i * 3 + 3])
        .count();
    // 14×14 minus the 2×2 and 3×3 erosions: about 10×10.
    assert!((64..=196).contains(&changed), "{changed} pixels changed");
}

#[test]
fn passed_through_frames_are_bit_identical_and_errors_are_clear() {
    let original = astronaut();
    let face = paste(Frame::filled(R, R, [1, 2, 3]), [222.0, 117.0], 160.0, 0.0);
    let mut frames = vec![original.clone(), original.clone(), original.clone()];
    restore_cpu(&mut frames, &[None, Some(face.clone()), None]);
    assert_eq!(frames[0], original);
    assert_eq!(frames[2], original);
    assert_ne!(frames[1], original);

    let mut r = Restorer::new(gpu::Compute::Cpu, RestoreConfig::default()).unwrap();
    let phase = Phase::detached("Restoring faces", None, "frames");
    let err = r.restore_batch(&mut frames, &[None], &phase).unwrap_err();
    assert!(
        matches!(
            err,
            RestoreError::LengthMismatch {
                frames: 3,
                faces: 1
            }
        ),
        "{err}"
    );
    let bad = FacePaste {
        face: Frame::filled(R, 10, [0, 0, 0]),
        ..face.clone()
    };
    let err = r
        .restore_batch(&mut frames[..1], &[Some(bad)], &phase)
        .unwrap_err();
    assert!(err.to_string().contains("256x10"), "{err}");
    let singular = FacePaste {
        to_crop: Affine2 { m: [[0.0; 3]; 2] },
        ..face
    };
    let err = r
        .restore_batch(&mut frames[..1], &[Some(singular)], &phase)
        .unwrap_err();
    assert!(
        matches!(err, RestoreError::SingularTransform { index: 0 }),
        "{err}"
    );
    assert_eq!(frames[0], original, "nothing modified on error");
}

#[test]
fn cancellation_stops_between_batches() {
    let mut frames = vec![Frame::filled(32, 32, [0, 0, 0]); 4];
    let faces = vec![None; 4];
    let mut r = Restorer::new(
        gpu::Compute::Cpu,
        RestoreConfig {
            batch: 2,
            threads: 1,
        },
    )
    .unwrap();
    let phase = Phase::detached("Restoring faces", Some(4), "frames");
    phase.cancel_token().cancel();
    let err = r.restore_batch(&mut frames, &faces, &phase).unwrap_err();
    assert!(matches!(err, RestoreError::Cancelled(_)), "{err}");
    assert_eq!(phase.pos(), 0);
}

/// Inside a batch the CPU path looks at the token before each frame: once it is set, the
/// frames not yet begun stay as they were (the stage stops within a frame, not a batch).
#[test]
fn cancellation_stops_inside_a_batch_on_the_cpu() {
    let frame = astronaut();
    let faces: Vec<Option<FacePaste>> = (0..4)
        .map(|_| {
            Some(paste(
                Frame::filled(R, R, [250, 10, 10]),
                [222.0, 118.0],
                130.0,
                0.0,
            ))
        })
        .collect();
    let plans: Vec<_> = faces
        .iter()
        .map(|f| mask::plan(0, &frame, f.as_ref().unwrap()).unwrap())
        .collect();
    let run = |cancel: &progress_core::CancelToken| {
        let mut frames = vec![frame.clone(); 4];
        let mut scratch: Vec<Scratch> = (0..2).map(|_| Scratch::default()).collect();
        cpu::restore_frames(&mut frames, &faces, &plans, &mut scratch, cancel);
        frames.iter().filter(|f| **f != frame).count()
    };
    assert_eq!(run(&progress_core::CancelToken::new()), 4);
    let cancelled = progress_core::CancelToken::new();
    cancelled.cancel();
    assert_eq!(run(&cancelled), 0, "frames restored after the cancel");
}

// ---- GPU vs CPU ----------------------------------------------------------------------------

/// The GPU of this machine; like the other GPU tests of the workspace, a missing adapter is a
/// failure, not a skip (CI installs lavapipe).
fn gpu_compute() -> gpu::Compute {
    let opts = gpu::GpuOptions {
        backend: gpu::BackendChoice::Gpu,
        ..gpu::GpuOptions::from_env()
    };
    gpu::acquire(&opts)
        .map(gpu::Acquired::into_compute)
        .unwrap_or_else(|e| {
            panic!(
                "NO GPU ADAPTER, the GPU-vs-CPU restore test cannot run ({e}). Install Mesa's \
             lavapipe (apt-get install mesa-vulkan-drivers libvulkan1) or select an adapter \
             with WGPU_*"
            )
        })
}

/// A face with texture everywhere (so bilinear sampling differences would show).
fn patterned_face() -> Frame {
    let mut data = Vec::with_capacity((R * R * 3) as usize);
    for y in 0..R {
        for x in 0..R {
            let v = (x * 7 + y * 13) ^ (x * y);
            data.extend_from_slice(&[(v % 251) as u8, (x % 256) as u8, (255 - y % 256) as u8]);
        }
    }
    Frame::new(R, R, data).unwrap()
}

struct Case {
    name: &'static str,
    frame: Frame,
    paste: Option<FacePaste>,
}

fn gpu_cases() -> Vec<Case> {
    let photo = astronaut();
    let real = |angle: f64| Some(own_crop(&photo, [222.0, 117.0], 160.0, angle));
    let patterned = |centre: [f64; 2], side: f64, angle: f64| {
        Some(paste(patterned_face(), centre, side, angle))
    };
    let flat = |w, h| Frame::filled(w, h, [40, 90, 160]);
    vec![
        Case {
            name: "astronaut upright",
            frame: photo.clone(),
            paste: real(0.0),
        },
        Case {
            name: "astronaut rotated 0.3",
            frame: photo.clone(),
            paste: real(0.3),
        },
        Case {
            name: "no face",
            frame: photo.clone(),
            paste: None,
        },
        Case {
            name: "astronaut rotated -1.0",
            frame: photo.clone(),
            paste: real(-1.0),
        },
        Case {
            name: "top-left corner, odd frame",
            frame: flat(301, 203),
            paste: patterned([20.0, 10.0], 120.0, 0.1),
        },
        Case {
            name: "bottom-right corner, rotated",
            frame: flat(301, 203),
            paste: patterned([290.0, 195.0], 90.0, 2.2),
        },
        Case {
            name: "tiny face (w_edge 0)",
            frame: photo.clone(),
            paste: patterned([222.0, 117.0], 14.0, 0.0),
        },
        Case {
            name: "small rotated face (w_edge 1)",
            frame: flat(97, 61),
            paste: patterned([50.5, 30.25], 31.0, 0.7),
        },
        Case {
            name: "face larger than a 7x5 frame",
            frame: flat(7, 5),
            paste: patterned([3.0, 2.0], 40.0, 0.2),
        },
        Case {
            name: "face outside the frame",
            frame: flat(64, 48),
            paste: patterned([-300.0, -300.0], 50.0, 0.0),
        },
        Case {
            name: "astronaut rotated 0.3, lower-face mask",
            frame: photo.clone(),
            paste: patterned([222.0, 117.0], 160.0, 0.3).map(|p| with_mask(p, 12.0)),
        },
        Case {
            name: "bottom-right corner, lower-face mask, 1 px feather",
            frame: flat(301, 203),
            paste: patterned([280.0, 185.0], 90.0, 2.2).map(|p| with_mask(p, 1.0)),
        },
    ]
}

/// A lower-face polygon of the R×R face (face pixels), in `infer::convex_hull`'s order: the
/// top edge left to right, then down the right side, the chin, up the left side.
const LOWER_FACE: [[f32; 2]; 6] = [
    [60.0, 140.0],
    [196.0, 140.0],
    [214.0, 196.0],
    [160.0, 244.0],
    [96.0, 244.0],
    [42.0, 196.0],
];

fn with_mask(paste: FacePaste, feather: f32) -> FacePaste {
    FacePaste {
        mask: Some(PasteMask {
            polygon: LOWER_FACE.to_vec(),
            feather,
        }),
        ..paste
    }
}

/// Signed distance (face pixels, positive inside) of frame pixel `(x, y)`'s face point from
/// [`LOWER_FACE`]'s nearest edge line, in f64.
fn lower_face_distance(paste: &FacePaste, x: u32, y: u32) -> f64 {
    let q = paste.to_crop.apply([f64::from(x), f64::from(y)]);
    let n = LOWER_FACE.len();
    (0..n)
        .map(|i| {
            let (a, b) = (LOWER_FACE[i], LOWER_FACE[(i + 1) % n]);
            let e = [f64::from(b[0] - a[0]), f64::from(b[1] - a[1])];
            let len = e[0].hypot(e[1]);
            (e[0] * (q[1] - f64::from(a[1])) - e[1] * (q[0] - f64::from(a[0]))) / len
        })
        .fold(f64::INFINITY, f64::min)
}

/// Pixels of `after` that differ from `before` although their face point lies outside
/// [`LOWER_FACE`] by more than `margin` face pixels.
fn changed_outside_mask(before: &Frame, after: &Frame, paste: &FacePaste, margin: f64) -> usize {
    let mut n = 0;
    for y in 0..before.height() {
        for x in 0..before.width() {
            if lower_face_distance(paste, x, y) < -margin && before.pixel(x, y) != after.pixel(x, y)
            {
                n += 1;
            }
        }
    }
    n
}

/// GPU vs CPU over the pixels either path changed: (pixels compared, pixels equal in every
/// channel, pixels off by more than 1 LSB in some channel, largest difference).
fn diff_stats(original: &Frame, cpu: &Frame, gpu: &Frame) -> (usize, usize, usize, u8) {
    let (mut n, mut exact, mut off, mut max) = (0, 0, 0, 0);
    fn px(f: &Frame) -> std::slice::ChunksExact<'_, u8> {
        f.data().chunks_exact(3)
    }
    for ((o, c), g) in px(original).zip(px(cpu)).zip(px(gpu)) {
        if o == c && o == g {
            continue;
        }
        let d = c
            .iter()
            .zip(g)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        n += 1;
        exact += usize::from(d == 0);
        off += usize::from(d > 1);
        max = max.max(d);
    }
    (n, exact, off, max)
}

#[test]
fn gpu_matches_cpu_within_one_lsb() {
    // Tolerance, over the pixels either path changed in a frame: ≥ 99.9% within 1 LSB in
    // every channel, ≥ 99% exactly equal (a truncating blend would fail this), none off by
    // more than 2; pixels outside the CPU's soft mask bit-identical to the input.
    let cases = gpu_cases();
    let originals: Vec<Frame> = cases.iter().map(|c| c.frame.clone()).collect();
    let faces: Vec<Option<FacePaste>> = cases.iter().map(|c| c.paste.clone()).collect();
    let mut cpu_out = originals.clone();
    restore_cpu(&mut cpu_out, &faces);
    let mut r = restorer(gpu_compute(), 3);
    assert!(r.uses_gpu());
    let mut gpu_out = originals.clone();
    restore_with(&mut r, &mut gpu_out, &faces);
    for (i, case) in cases.iter().enumerate() {
        let (n, exact, off, max) = diff_stats(&originals[i], &cpu_out[i], &gpu_out[i]);
        assert!(
            off * 1000 <= n && exact * 100 >= n * 99 && max <= 2,
            "{}: of {n} restored pixels {exact} are equal, {off} differ by more than 1 LSB \
             (max {max})",
            case.name
        );
        match &case.paste {
            None => assert_eq!(gpu_out[i], originals[i], "{}: passed through", case.name),
            Some(paste) => {
                let soft = full_soft_mask(&originals[i], paste);
                let (_, changed_outside) = compare(&originals[i], &gpu_out[i], &soft, 2.0);
                assert_eq!(changed_outside, 0, "{}: pixels outside the mask", case.name);
            }
        }
        if case.name.starts_with("face outside") {
            assert_eq!(gpu_out[i], originals[i], "{}", case.name);
        }
        if let Some(paste) = case.paste.as_ref().filter(|p| p.mask.is_some()) {
            // 1e-3 face px: the f64 distance here against the paths' f32 arithmetic.
            let outside = changed_outside_mask(&originals[i], &gpu_out[i], paste, 1e-3);
            assert_eq!(outside, 0, "{}: pixels outside the paste mask", case.name);
            assert_ne!(gpu_out[i], originals[i], "{}: pasted inside", case.name);
        }
    }
    // The cases really paste something where they should.
    assert_ne!(gpu_out[0], originals[0]);
    assert_eq!(gpu_out[4].pixel(0, 0), cpu_out[4].pixel(0, 0));
    assert_ne!(
        gpu_out[4].pixel(0, 0),
        originals[4].pixel(0, 0),
        "corner face"
    );
    assert_ne!(gpu_out[8], originals[8], "7x5 frame covered by the face");
}

#[test]
fn gpu_round_trip_keeps_the_psnr() {
    let mut r = restorer(gpu_compute(), 16);
    assert!(r.uses_gpu());
    check_round_trip(&mut r, 0.3);
}

#[test]
fn gpu_buffers_are_reused_across_batches() {
    let photo = astronaut();
    let faces = vec![Some(paste(patterned_face(), [222.0, 117.0], 160.0, 0.2)); 4];
    let mut r = restorer(gpu_compute(), 4);
    let phase = Phase::detached("Restoring faces", None, "frames");
    let mut frames = vec![photo.clone(); 4];
    r.restore_batch(&mut frames, &faces, &phase).unwrap();
    let first = r.gpu_buffer_generations().expect("gpu path");
    assert!(first.iter().all(|&g| g >= 1), "{first:?}");
    let mut again = vec![photo.clone(); 4];
    r.restore_batch(&mut again, &faces, &phase).unwrap();
    assert_eq!(r.gpu_buffer_generations().unwrap(), first, "no new buffers");
    assert_eq!(again, frames, "same input, same output");
    // A smaller batch fits the buffers as well.
    r.restore_batch(&mut again[..1], &faces[..1], &phase)
        .unwrap();
    assert_eq!(r.gpu_buffer_generations().unwrap(), first);
}

// ---- paste mask -----------------------------------------------------------------------------

/// A patterned face pasted over the photo with [`LOWER_FACE`] as its mask (CPU path): every
/// frame pixel whose face point lies outside the polygon keeps its value bit for bit; deeper
/// inside than the feather the result is the unmasked paste's; and without the mask the same
/// paste changes thousands of pixels outside the polygon (so the check can fail).
#[test]
fn the_paste_mask_keeps_every_pixel_outside_it() {
    let photo = astronaut();
    let plain = paste(patterned_face(), [222.0, 117.0], 160.0, 0.3);
    let masked = with_mask(plain.clone(), 12.0);
    let mut with = vec![photo.clone()];
    restore_cpu(&mut with, &[Some(masked.clone())]);
    let mut without = vec![photo.clone()];
    restore_cpu(&mut without, &[Some(plain)]);
    // 1e-3 face px: the f64 distance here against the path's f32 arithmetic.
    assert_eq!(changed_outside_mask(&photo, &with[0], &masked, 1e-3), 0);
    let spill = changed_outside_mask(&photo, &without[0], &masked, 1e-3);
    assert!(
        spill > 1000,
        "the unmasked paste changes {spill} pixels outside"
    );
    let (mut inside, mut band) = (0, 0);
    for y in 0..photo.height() {
        for x in 0..photo.width() {
            let d = lower_face_distance(&masked, x, y);
            if d > 12.0 + 1e-3 {
                inside += 1;
                assert_eq!(with[0].pixel(x, y), without[0].pixel(x, y), "({x}, {y})");
            } else if d > 1.0 && d < 11.0 {
                band += usize::from(with[0].pixel(x, y) != photo.pixel(x, y));
            }
        }
    }
    assert!(inside > 3000 && band > 1000, "inside {inside}, band {band}");
}

/// Masks that are not convex polygons in `infer::convex_hull`'s order, or have no positive
/// feather, are errors naming the frame; nothing is modified.
#[test]
fn bad_paste_masks_are_errors_naming_the_frame() {
    let photo = astronaut();
    let base = paste(patterned_face(), [222.0, 117.0], 160.0, 0.0);
    let mut reversed = LOWER_FACE.to_vec();
    reversed.reverse();
    let mut dented = LOWER_FACE.to_vec();
    dented.insert(4, [128.0, 180.0]);
    let cases = [
        (LOWER_FACE[..2].to_vec(), 4.0, "at least 3"),
        (reversed, 4.0, "not convex"),
        (dented, 4.0, "not convex"),
        (LOWER_FACE.to_vec(), 0.0, "feather"),
        (vec![[0.0, 0.0], [f32::NAN, 1.0], [1.0, 1.0]], 4.0, "finite"),
    ];
    for (polygon, feather, want) in cases {
        let bad = FacePaste {
            mask: Some(PasteMask { polygon, feather }),
            ..base.clone()
        };
        let mut frames = vec![photo.clone(), photo.clone()];
        let mut r = Restorer::new(gpu::Compute::Cpu, RestoreConfig::default()).unwrap();
        let phase = Phase::detached("Restoring faces", Some(2), "frames");
        let err = r
            .restore_batch(&mut frames, &[Some(base.clone()), Some(bad)], &phase)
            .unwrap_err();
        assert!(
            matches!(err, RestoreError::Mask { index: 1, .. }) && err.to_string().contains(want),
            "{err}"
        );
        assert!(frames.iter().all(|f| *f == photo), "nothing modified");
    }
}
