//! GPU BlazeFace against tract (CPU) on real face crops, plus the pure planning helpers.

use gpu::{BackendChoice, GpuOptions};

use super::plan::{self, Kind, Slot};
use super::{GpuBlazeFace, assign_slots};
use crate::detect::BlazeFaceBackend;
use crate::model::{self, BLAZEFACE_ONNX, TractPlan};

/// Largest |gpu − cpu| allowed on score logits and on regressors (regressors are in input
/// pixels, up to ~±128, so the bound is scaled by max(1, |cpu|)).
const TOLERANCE: f32 = 2e-3;
const SIDE: usize = 128;

/// tract outputs for one frame (the CPU path, `model::run_tract`).
fn tract_run(model: &TractPlan, frame: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let out = model::run_tract(model, frame).expect("tract run");
    (out.scores, out.regressors)
}

fn astronaut() -> (usize, usize, Vec<u8>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-data/astronaut.png");
    let file = std::fs::File::open(path).expect("test-data/astronaut.png");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.color_type, png::ColorType::Rgb, "astronaut.png is RGB");
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

/// A square region (x0, y0, side) of the photo, resampled (nearest) to 128×128, optionally
/// mirrored, in [-1, 1].
fn crop(
    img: &(usize, usize, Vec<u8>),
    x0: usize,
    y0: usize,
    side: usize,
    mirror: bool,
) -> Vec<f32> {
    let (w, h, data) = img;
    let mut out = Vec::with_capacity(SIDE * SIDE * 3);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let xs = if mirror { SIDE - 1 - x } else { x };
            let sx = (x0 + (xs * side + side / 2) / SIDE).min(w - 1);
            let sy = (y0 + (y * side + side / 2) / SIDE).min(h - 1);
            for c in 0..3 {
                out.push(f32::from(data[(sy * w + sx) * 3 + c]) / 127.5 - 1.0);
            }
        }
    }
    out
}

/// Three different real inputs: the face with margin (the face is at about x 173, y 68,
/// 99×99), the whole photo, and the face crop mirrored and tighter.
fn frames() -> Vec<Vec<f32>> {
    let img = astronaut();
    vec![
        crop(&img, 122, 17, 200, false),
        crop(&img, 0, 0, 512, false),
        crop(&img, 150, 45, 150, true),
    ]
}

fn net() -> GpuBlazeFace {
    let opts = GpuOptions {
        backend: BackendChoice::Gpu,
        ..GpuOptions::from_env()
    };
    let compute = gpu::acquire(&opts, None)
        .expect("no wgpu adapter: install mesa-vulkan-drivers (lavapipe) to run the gpu tests");
    let ctx = compute
        .gpu()
        .expect("BackendChoice::Gpu gives a gpu context");
    GpuBlazeFace::new(ctx).expect("gpu blazeface")
}

/// Max |gpu − cpu| / max(1, |cpu|).
fn max_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len());
    gpu.iter()
        .zip(cpu)
        .map(|(g, c)| (g - c).abs() / c.abs().max(1.0))
        .fold(0.0, f32::max)
}

fn check_batch(net: &mut GpuBlazeFace, model: &TractPlan, batch: &[&Vec<f32>]) {
    let n = batch.len();
    let input: Vec<f32> = batch.iter().flat_map(|f| f.iter().copied()).collect();
    let (scores, boxes) = net.run(&input, n).expect("gpu run");
    assert_eq!((scores.len(), boxes.len()), (n * 896, n * 896 * 16));
    for (i, frame) in batch.iter().enumerate() {
        let (cs, cb) = tract_run(model, frame);
        let es = max_err(&scores[i * 896..(i + 1) * 896], &cs);
        let eb = max_err(&boxes[i * 896 * 16..(i + 1) * 896 * 16], &cb);
        assert!(
            es <= TOLERANCE && eb <= TOLERANCE,
            "frame {i} of {n}: score err {es}, box err {eb}"
        );
    }
}

#[test]
fn gpu_matches_tract_on_real_crops_batched() {
    let mut net = net();
    let model = model::load_tract().expect("tract loads blazeface");
    let f = frames();
    // The face crop must actually contain a face for the comparison to mean something.
    let (cpu_scores, _) = tract_run(&model, &f[0]);
    let best = cpu_scores.iter().copied().fold(f32::MIN, f32::max);
    assert!(
        best > 0.0,
        "tract finds no face in the crop (max logit {best})"
    );
    check_batch(&mut net, &model, &[&f[0], &f[1]]);
    check_batch(&mut net, &model, &[&f[2], &f[0], &f[1]]);
    // Smaller batch after a larger one reuses the buffers.
    check_batch(&mut net, &model, &[&f[1]]);
    // Through the detector's backend seam, on a clone (own buffers, shared weights).
    let mut backend = net.boxed_clone();
    let input: Vec<f32> = [&f[1], &f[2]]
        .iter()
        .flat_map(|v| v.iter().copied())
        .collect();
    let outs = backend.run(&input).expect("backend run");
    assert_eq!(outs.len(), 2);
    for (out, frame) in outs.iter().zip([&f[1], &f[2]]) {
        let (cs, cb) = tract_run(&model, frame);
        let (es, eb) = (max_err(&out.scores, &cs), max_err(&out.regressors, &cb));
        assert!(
            es <= TOLERANCE && eb <= TOLERANCE,
            "backend: score err {es}, box err {eb}"
        );
    }
}

#[test]
fn run_rejects_a_wrong_input_length() {
    let mut net = net();
    let err = net
        .run(&[0.0; 10], 1)
        .expect_err("10 floats is not a frame");
    assert!(err.to_string().contains("10 floats"), "{err}");
}

#[test]
fn plan_folds_every_node_of_the_graph() {
    let plan = plan::plan_from_onnx(BLAZEFACE_ONNX).expect("plan");
    let count = |k: Kind| plan.layers.iter().filter(|l| l.kind == k).count();
    assert_eq!(
        (
            count(Kind::Conv),
            count(Kind::Depthwise),
            count(Kind::Pointwise)
        ),
        (1, 16, 20)
    );
    assert_eq!(plan.layers.iter().filter(|l| l.relu).count(), 17);
    let residuals: Vec<_> = plan.layers.iter().filter_map(|l| l.residual).collect();
    assert_eq!(residuals.len(), 16);
    assert_eq!(residuals.iter().filter(|r| r.pool).count(), 3);
    assert_eq!((plan.anchors, plan.coords), (896, 16));
    let heads: Vec<_> = plan
        .layers
        .iter()
        .map(|l| l.dst)
        .filter(|d| !matches!(d, Slot::Value(_)))
        .collect();
    assert_eq!(
        heads.len(),
        4,
        "two score heads and two regressor heads, got {heads:?}"
    );
    for (dst, offset) in [
        (Slot::Scores { offset: 0 }, 0),
        (Slot::Scores { offset: 512 }, 512),
    ] {
        assert!(heads.contains(&dst), "missing head at anchor {offset}");
    }
}

#[test]
fn slots_never_overwrite_a_live_value() {
    let plan = plan::plan_from_onnx(BLAZEFACE_ONNX).expect("plan");
    let (slot, count) = assign_slots(&plan);
    assert!(count <= 4, "{count} slot buffers");
    // Replay: each slot holds the value last written to it; every read must find its value.
    let mut holds = vec![usize::MAX; count];
    for l in &plan.layers {
        for s in [Some(l.src), l.residual.map(|r| r.src)]
            .into_iter()
            .flatten()
        {
            if let Slot::Value(v) = s {
                assert_eq!(
                    holds[slot[v]], v,
                    "layer {} reads value {v} after it was overwritten",
                    l.name
                );
            }
        }
        if let Slot::Value(v) = l.dst {
            holds[slot[v]] = v;
        }
    }
}
