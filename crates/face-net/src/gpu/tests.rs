//! GPU BlazeFace against the CPU network on real face crops, plus the pure planning helpers.

use gpu::{BackendChoice, GpuOptions};

use super::{GpuBlazeFace, assign_slots};
use crate::blazeface::{self as model, BLAZEFACE_ONNX};
use crate::cpu_net::CpuNet;
use crate::plan::{self, Kind, Slot};
use crate::testutil::{astronaut, nearest_crop};

/// Largest |gpu − cpu| allowed on score logits and on regressors (regressors are in input
/// pixels, up to ~±128, so the bound is scaled by max(1, |cpu|)).
const TOLERANCE: f32 = 2e-3;

/// CPU outputs for one frame (the CPU path, checked against onnxruntime in `model`'s tests).
fn cpu_run(model: &mut CpuNet, frame: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let out = model.run(frame);
    (out.scores, out.regressors)
}

/// Three different real inputs: the face with margin (the face is at about x 173, y 68,
/// 99×99), the whole photo, and the face crop mirrored and tighter.
fn frames() -> Vec<Vec<f32>> {
    let img = astronaut();
    vec![
        nearest_crop(&img, 122, 17, 200, false),
        nearest_crop(&img, 0, 0, 512, false),
        nearest_crop(&img, 150, 45, 150, true),
    ]
}

fn net() -> GpuBlazeFace {
    let opts = GpuOptions {
        backend: BackendChoice::Gpu,
        ..GpuOptions::from_env()
    };
    let compute = gpu::acquire(&opts)
        .map(gpu::Acquired::into_compute)
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

fn check_batch(net: &mut GpuBlazeFace, model: &mut CpuNet, batch: &[&Vec<f32>]) {
    let n = batch.len();
    let input: Vec<f32> = batch.iter().flat_map(|f| f.iter().copied()).collect();
    let (scores, boxes) = net.run(&input, n).expect("gpu run");
    assert_eq!((scores.len(), boxes.len()), (n * 896, n * 896 * 16));
    for (i, frame) in batch.iter().enumerate() {
        let (cs, cb) = cpu_run(model, frame);
        let es = max_err(&scores[i * 896..(i + 1) * 896], &cs);
        let eb = max_err(&boxes[i * 896 * 16..(i + 1) * 896 * 16], &cb);
        assert!(
            es <= TOLERANCE && eb <= TOLERANCE,
            "frame {i} of {n}: score err {es}, box err {eb}"
        );
    }
}

#[test]
fn gpu_matches_cpu_on_real_crops_batched() {
    let mut net = net();
    let model = &mut CpuNet::new(model::load_plan().expect("the plan folds"));
    let f = frames();
    // The face crop must actually contain a face for the comparison to mean something.
    let (cpu_scores, _) = cpu_run(model, &f[0]);
    let best = cpu_scores.iter().copied().fold(f32::MIN, f32::max);
    assert!(
        best > 0.0,
        "the CPU network finds no face in the crop (max logit {best})"
    );
    check_batch(&mut net, model, &[&f[0], &f[1]]);
    check_batch(&mut net, model, &[&f[2], &f[0], &f[1]]);
    // Smaller batch after a larger one reuses the buffers.
    check_batch(&mut net, model, &[&f[1]]);
    // One output per input, on a clone (own buffers, shared weights).
    let mut clone = net.clone();
    let input: Vec<f32> = [&f[1], &f[2]]
        .iter()
        .flat_map(|v| v.iter().copied())
        .collect();
    let outs = clone.run_each(&input).expect("run_each");
    assert_eq!(outs.len(), 2);
    for (out, frame) in outs.iter().zip([&f[1], &f[2]]) {
        let (cs, cb) = cpu_run(model, frame);
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

/// Found by `fuzz/run onnx` (test-kit's `findings/onnx-reshape-overflow`, the BlazeFace model with a
/// Reshape target `[1, -6726657107594051072, 119]`): the Reshape check `a * k` overflowed and
/// panicked. The model is now refused with an error naming the node, the op and the target.
#[test]
fn fuzz_finding_reshape_overflow_is_a_clear_error() {
    let bytes = test_kit::fuzz_finding("onnx-reshape-overflow");
    let err = plan::plan_from_onnx(&bytes)
        .map(drop)
        .expect_err("the finding must be refused")
        .to_string();
    assert!(
        err.contains("regressors_1\" (Reshape) is not supported")
            && err.contains("reshape to [1, -6726657107594051072, 119]"),
        "{err}"
    );
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
