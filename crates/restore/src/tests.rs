//! Restoration tests on the astronaut photo (test-data/astronaut.png, public domain, face at
//! about x 173, y 68, 99×99).

use frame::{Affine2, Frame};
use progress_core::Phase;

use crate::cpu::{self, Scratch};
use crate::mask;
use crate::{FacePaste, RestoreConfig, RestoreError, Restorer};

const R: u32 = 256;

fn astronaut() -> Frame {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-data/astronaut.png");
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("astronaut.png"));
    let mut reader = png::Decoder::new(file).read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    Frame::new(info.width, info.height, buf).expect("frame")
}

/// Frame → R×R map: the square of side `side` centred on `centre`, rotated by `angle`.
fn to_crop(centre: [f64; 2], side: f64, angle: f64) -> Affine2 {
    let s = f64::from(R) / side;
    let rot = Affine2::similarity(s, angle, 0.0, 0.0);
    let c = rot.apply(centre);
    let half = (f64::from(R) - 1.0) / 2.0;
    Affine2::similarity(s, angle, half - c[0], half - c[1])
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

/// The soft mask over the whole frame (0 outside the region).
fn full_soft_mask(frame: &Frame, paste: &FacePaste) -> Vec<f32> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut soft = vec![0.0; w * h];
    let Some(plan) = mask::plan(0, frame, paste).unwrap() else {
        return soft;
    };
    let mut s = Scratch::default();
    let roi = cpu::soft_mask(&plan, w, h, &mut s);
    let plan_soft = cpu::soft_for_tests(&s);
    for y in roi.y0..roi.y1 {
        for x in roi.x0..roi.x1 {
            soft[y * w + x] = plan_soft[(y - roi.y0) * roi.width() + (x - roi.x0)];
        }
    }
    soft
}

fn restore_cpu(frames: &mut [Frame], faces: &[Option<FacePaste>]) {
    let mut r = Restorer::new(
        gpu::Compute::Cpu,
        RestoreConfig {
            batch: 2,
            threads: 2,
        },
    )
    .unwrap();
    let phase = Phase::detached("Restoring faces", Some(frames.len() as u64), "frames");
    r.restore_batch(frames, faces, &phase).unwrap();
    assert_eq!(phase.pos(), frames.len() as u64);
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

fn check_round_trip(centre: [f64; 2], side: f64, angle: f64, min_psnr: f64) {
    let original = astronaut();
    let t = to_crop(centre, side, angle);
    let paste = FacePaste {
        face: warp_crop(&original, &t),
        to_crop: t,
    };
    let soft = full_soft_mask(&original, &paste);
    let mut frames = vec![original.clone()];
    restore_cpu(&mut frames, &[Some(paste)]);
    let (psnr, changed_outside) = compare(&original, &frames[0], &soft, 1e-6);
    assert_eq!(changed_outside, 0, "pixels outside the mask changed");
    assert!(
        psnr >= min_psnr,
        "PSNR {psnr:.2} dB < {min_psnr} (angle {angle})"
    );
}

#[test]
fn round_trip_upright_and_rotated() {
    // Face at x 173..272, y 68..167: centre (222, 117); crop side 1.6 × the face.
    for angle in [0.0, 0.3, -1.0] {
        check_round_trip([222.0, 117.0], 160.0, angle, 38.0);
    }
}

#[test]
fn flat_face_has_a_feathered_seam() {
    // Flat frame 100, flat face 200: any neighbour step comes from the mask gradient. A
    // convex mask eroded then blurred by a normalised separable Gaussian changes by at most
    // the largest kernel tap g_max between neighbours, so the step is at most
    // ceil(g_max * 100) + 1 (rounding); without the feather it would be 100.
    let frame = Frame::filled(400, 300, [100, 100, 100]);
    let t = to_crop([200.0, 150.0], 170.0, 0.2);
    let paste = FacePaste {
        face: Frame::filled(R, R, [200, 200, 200]),
        to_crop: t,
    };
    let plan = mask::plan(0, &frame, &paste).unwrap().unwrap();
    let mut s = Scratch::default();
    let roi = cpu::soft_mask(&plan, 400, 300, &mut s);
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
    let t = to_crop([20.0, 10.0], 120.0, 0.1);
    let paste = FacePaste {
        face: Frame::filled(R, R, [250, 250, 250]),
        to_crop: t,
    };
    let soft = full_soft_mask(&frame, &paste);
    let mut frames = vec![frame.clone()];
    restore_cpu(&mut frames, &[Some(paste)]);
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
    let away = FacePaste {
        face: Frame::filled(R, R, [250, 250, 250]),
        to_crop: to_crop([-500.0, -500.0], 100.0, 0.0),
    };
    let mut frames = vec![frame.clone()];
    restore_cpu(&mut frames, &[Some(away)]);
    assert_eq!(frames[0], frame);
}

#[test]
fn tiny_face_uses_the_3x3_default_erosion_and_no_blur() {
    let frame = astronaut();
    // 14 px face: mask area ~196 -> sqrt 14 -> w_edge 0.
    let t = to_crop([222.0, 117.0], 14.0, 0.0);
    let paste = FacePaste {
        face: Frame::filled(R, R, [0, 255, 0]),
        to_crop: t,
    };
    let plan = mask::plan(0, &frame, &paste).unwrap().unwrap();
    let mut s = Scratch::default();
    let roi = cpu::soft_mask(&plan, 512, 512, &mut s);
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
    let t = to_crop([222.0, 117.0], 160.0, 0.0);
    let face = FacePaste {
        face: Frame::filled(R, R, [1, 2, 3]),
        to_crop: t,
    };
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
        to_crop: t,
    };
    let err = r
        .restore_batch(&mut frames[..1], &[Some(bad)], &phase)
        .unwrap_err();
    assert!(err.to_string().contains("256x10"), "{err}");
    let singular = FacePaste {
        face: Frame::filled(R, R, [0, 0, 0]),
        to_crop: Affine2 { m: [[0.0; 3]; 2] },
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
