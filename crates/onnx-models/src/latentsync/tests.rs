//! The model on stand-in graphs (generated at test time by `tests/latentsync/standins.py`)
//! under ONNX Runtime (found as `crate::runtime` finds it: `ORT_DYLIB_PATH`, or the
//! `onnxruntime` package of `python3` or of `VIRTUAL_ENV`). Without them a test prints why it
//! is skipped, or fails under `FACESYNC_REQUIRE_ORT=1` (`cargo xtask test`).

use std::sync::{Arc, Mutex};

use frame::Frame;
use infer::{
    AudioFeatures, ChunkExtras, FrameFeatures, InferConfig, InferError, Inferencer, LipSyncModel,
};
use progress_core::{Control, Event, Outcome, Phase, Progress};

use super::engine::Graphs;
use super::graphs::{OrtGraphs, SessionSettings};
use super::tensor::{Buffer, Float};
use super::testing::standins;
use super::{
    FACE_SIZE, LatentSync, LatentSyncConfig, LatentSyncError, LatentSyncOptions, LatentSyncStats,
};

const FPS: f64 = 25.0;

fn face(seed: u32) -> Frame {
    let n = FACE_SIZE as usize;
    let mut data = vec![0u8; n * n * 3];
    for (i, v) in data.iter_mut().enumerate() {
        let (p, c) = (i / 3, i % 3);
        let (x, y) = (p % n, p / n);
        *v = ((x * 3 + y * 5 + c * 40 + seed as usize * 7) % 256) as u8;
    }
    Frame::new(FACE_SIZE, FACE_SIZE, data).unwrap()
}

fn speech(rate: u32, secs: f64) -> Vec<f32> {
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / f64::from(rate);
            let env = (t * 3.0 * std::f64::consts::PI).sin().abs();
            let v = (env * (2.0 * std::f64::consts::PI * 220.0 * t).sin() * 0.5) as f32;
            [v, -v]
        })
        .collect()
}

fn model(dir: &std::path::Path, config: LatentSyncConfig) -> LatentSync {
    let options = LatentSyncOptions {
        session: SessionSettings::default(),
        config,
    };
    LatentSync::open(dir, &options).unwrap_or_else(|e| panic!("{e}"))
}

/// The model's own features of `secs` of 44.1 kHz stereo speech, streamed in blocks.
fn features(m: &LatentSync, secs: f64, n_frames: usize) -> Box<dyn FrameFeatures> {
    let mut b = m
        .feature_builder(2, 44_100)
        .unwrap()
        .expect("latentsync has its own features");
    for block in speech(44_100, secs).chunks(2 * 1000) {
        b.push(block).unwrap();
    }
    b.finish(FPS, n_frames).unwrap()
}

/// The built-in features the scheduler's signature asks for (LatentSync reads its own).
fn builtin_audio(n: usize) -> AudioFeatures {
    AudioFeatures::from_samples(&[0.0; 16_000], 1, 16_000, FPS, n).unwrap()
}

/// What the pipeline does: a "Doing inference" phase, chunks of 16 with the model's features.
fn run_all(
    inf: &mut Inferencer<LatentSync>,
    faces: &[Frame],
    features: &dyn FrameFeatures,
    parent: &Phase,
) -> Result<Vec<Frame>, InferError> {
    let phase = parent.child("Doing inference", Some(faces.len() as u64), "frames");
    let builtin = builtin_audio(faces.len());
    let mut out = Vec::new();
    for (k, chunk) in faces.chunks(16).enumerate() {
        out.extend(inf.run_chunk(
            chunk,
            16 * k,
            &builtin,
            ChunkExtras::with_features(features),
            &phase,
        )?);
    }
    phase.finish();
    Ok(out)
}

fn run(m: LatentSync, faces: &[Frame], steps: usize) -> (Vec<Frame>, LatentSyncStats) {
    let f = features(&m, 1.2, faces.len());
    let mut inf = Inferencer::new(
        m,
        InferConfig {
            steps,
            ..InferConfig::default()
        },
    );
    let phase = Phase::detached("run", None, "");
    let out = run_all(&mut inf, faces, f.as_ref(), &phase).unwrap_or_else(|e| panic!("{e}"));
    (out, inf.model().stats())
}

#[test]
fn a_clip_with_a_partial_last_chunk_keeps_every_frame_and_the_unmasked_pixels() {
    let Some(dir) = standins("ok") else {
        return;
    };
    let faces: Vec<Frame> = (0..21).map(face).collect();
    let (out, m) = run(model(dir.path(), LatentSyncConfig::default()), &faces, 3);
    assert_eq!(out.len(), 21, "no frame dropped");
    assert_eq!(m.unet_calls, 2 * 3, "two chunks of three steps");
    let mask = super::mask::MouthMask::load();
    for (i, (o, f)) in out.iter().zip(&faces).enumerate() {
        assert_eq!((o.width(), o.height()), (FACE_SIZE, FACE_SIZE));
        let mut changed = 0;
        for (p, &m) in mask.pixels.iter().enumerate() {
            let (a, b) = (&o.data()[p * 3..p * 3 + 3], &f.data()[p * 3..p * 3 + 3]);
            if m == 1.0 {
                assert_eq!(a, b, "frame {i}: kept pixel {p} changed");
            } else if a != b {
                changed += 1;
            }
        }
        assert!(
            changed > 10_000,
            "frame {i}: only {changed} regenerated pixels differ"
        );
    }
}

#[test]
fn a_seed_reproduces_the_video_and_another_seed_changes_it() {
    let Some(dir) = standins("ok") else {
        return;
    };
    let faces: Vec<Frame> = (0..5).map(face).collect();
    let go = |seed| {
        let config = LatentSyncConfig {
            seed,
            ..LatentSyncConfig::default()
        };
        run(model(dir.path(), config), &faces, 2).0
    };
    let a = go(7);
    assert_eq!(a, go(7));
    assert_ne!(a, go(8));
}

#[test]
fn guidance_one_runs_one_batch_item_and_differs_from_guidance_one_and_a_half() {
    let Some(dir) = standins("ok") else {
        return;
    };
    let faces: Vec<Frame> = (0..3).map(face).collect();
    let go = |guidance| {
        let config = LatentSyncConfig {
            guidance,
            ..LatentSyncConfig::default()
        };
        run(model(dir.path(), config), &faces, 2)
    };
    let (one, m1) = go(1.0);
    let (guided, m2) = go(1.5);
    assert_eq!(m1.unet_calls, 2);
    assert_eq!(m2.unet_calls, 2);
    assert_ne!(one, guided);
}

#[test]
fn progress_counts_frames_and_unet_calls() {
    let Some(dir) = standins("ok") else {
        return;
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let progress = Progress::builder()
        .sink(move |e: &Event| {
            sink.lock().unwrap().push(e.clone());
            Control::Continue
        })
        .start();
    let root = progress.phase("run", None, "");
    let faces: Vec<Frame> = (0..18).map(face).collect();
    let m = model(dir.path(), LatentSyncConfig::default());
    let f = features(&m, 1.0, 18);
    let mut inf = Inferencer::new(
        m,
        InferConfig {
            steps: 4,
            ..InferConfig::default()
        },
    );
    let out = run_all(&mut inf, &faces, f.as_ref(), &root).unwrap();
    assert_eq!(out.len(), 18);
    root.finish();
    progress.shutdown();
    let events = events.lock().unwrap();
    let mut names = std::collections::HashMap::new();
    let mut finished = Vec::new();
    let mut previews = Vec::new();
    for e in events.iter() {
        match e {
            Event::PhaseStarted {
                id, name, total, ..
            } => {
                names.insert(*id, (name.clone(), *total));
            }
            Event::PhaseFinished {
                id, outcome, pos, ..
            } => {
                finished.push((names[id].0.clone(), names[id].1, *outcome, *pos));
            }
            Event::Preview { frame, image, .. } => previews.push((*frame, image.width)),
            _ => {}
        }
    }
    let of = |n: &str| {
        finished
            .iter()
            .filter(|f| f.0 == n)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of("Doing inference"),
        vec![("Doing inference".into(), Some(18), Outcome::Completed, 18)]
    );
    assert_eq!(
        of("steps"),
        vec![("steps".into(), Some(4), Outcome::Completed, 4); 2]
    );
    assert_eq!(inf.model().stats().unet_calls, 8);
    assert!(previews.contains(&(0, FACE_SIZE)) && previews.contains(&(16, FACE_SIZE)));
}

/// The stand-in sessions, cancelling a token after the `after`-th UNet call.
#[derive(Debug)]
struct CancelAfter {
    inner: OrtGraphs,
    token: progress_core::CancelToken,
    after: u64,
    calls: Arc<Mutex<u64>>,
}

impl Graphs for CancelAfter {
    fn encode(&mut self, p: &[f32]) -> Result<Vec<f32>, LatentSyncError> {
        self.inner.encode(p)
    }
    fn decode(&mut self, l: &[f32]) -> Result<Vec<f32>, LatentSyncError> {
        self.inner.decode(l)
    }
    fn unet_types(&self) -> (Float, Float) {
        self.inner.unet_types()
    }
    fn unet(
        &mut self,
        sample: &Buffer,
        batch: usize,
        t: i64,
        hidden: &Buffer,
        out: &mut [f32],
    ) -> Result<(), LatentSyncError> {
        self.inner.unet(sample, batch, t, hidden, out)?;
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if *calls == self.after {
            self.token.cancel();
        }
        Ok(())
    }
}

#[test]
fn a_cancel_stops_before_the_next_unet_call() {
    let Some(dir) = standins("ok") else {
        return;
    };
    let phase = Phase::detached("Doing inference", Some(16), "frames");
    let calls = Arc::new(Mutex::new(0));
    let inner = OrtGraphs::open(dir.path(), &SessionSettings::default()).unwrap();
    let whisper = inner.whisper();
    let graphs = CancelAfter {
        inner,
        token: phase.cancel_token().clone(),
        after: 3,
        calls: Arc::clone(&calls),
    };
    let m = LatentSync::with_graphs(
        dir.path(),
        Box::new(graphs),
        whisper,
        LatentSyncConfig::default(),
    );
    let f = features(&m, 1.0, 16);
    let mut inf = Inferencer::new(m, InferConfig::default());
    let faces: Vec<Frame> = (0..16).map(face).collect();
    let err = inf
        .run_chunk(
            &faces,
            0,
            &builtin_audio(16),
            ChunkExtras::with_features(f.as_ref()),
            &phase,
        )
        .unwrap_err();
    assert!(matches!(err, InferError::Cancelled(_)), "{err}");
    assert_eq!(*calls.lock().unwrap(), 3, "no UNet call after the cancel");
    assert_eq!(phase.pos(), 0, "the chunk's frames were not counted");
}

fn open_err(variant: &str, config: LatentSyncConfig) -> Option<String> {
    let dir = standins(variant)?;
    let options = LatentSyncOptions {
        session: SessionSettings::default(),
        config,
    };
    Some(
        LatentSync::open(dir.path(), &options)
            .unwrap_err()
            .to_string(),
    )
}

#[test]
fn every_contract_error_names_the_file_and_the_tensor() {
    let d = LatentSyncConfig::default;
    for (variant, config, wanted) in [
        (
            "unet_input_name",
            d(),
            &["unet.onnx", "`sample`", "no such input"][..],
        ),
        (
            "vae_encoder_rank",
            d(),
            &["vae_encoder.onnx", "`x`", "rank 3"],
        ),
        (
            "whisper_size",
            d(),
            &["whisper_tiny.onnx", "`segment`", "[1, 80, 1500]"],
        ),
        (
            "timestep_dtype",
            d(),
            &["unet.onnx", "`timestep`", "expected int64"],
        ),
        (
            "f16_unsupported",
            d(),
            &["unet.onnx", "float16", "sample", "CUDA"],
        ),
        (
            "unet_fixed_batch2",
            LatentSyncConfig {
                guidance: 1.0,
                ..d()
            },
            &["unet.onnx", "`sample`", "fixed at 2"],
        ),
    ] {
        let Some(e) = open_err(variant, config) else {
            return;
        };
        for w in wanted {
            assert!(e.contains(w), "{variant}: {e:?} lacks {w:?}");
        }
    }
}

#[test]
fn a_missing_file_is_named() {
    let Some(dir) = standins("ok") else {
        return;
    };
    for file in ["unet_weights.pb", "vae_decoder.onnx"] {
        let path = dir.path().join(file);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = LatentSync::open(dir.path(), &LatentSyncOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains(file), "{e}");
        std::fs::write(&path, bytes).unwrap();
    }
    let e = LatentSync::open(dir.path().join("nope"), &LatentSyncOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a folder"), "{e}");
}

#[test]
fn faces_of_another_size_and_missing_audio_are_errors() {
    let Some(dir) = standins("ok") else {
        return;
    };
    let options = LatentSyncOptions::default();
    let m = LatentSync::open(dir.path(), &options).unwrap();
    let mut inf = Inferencer::new(m, InferConfig::default());
    let phase = Phase::detached("Doing inference", Some(1), "frames");
    let e = inf
        .run_chunk(
            &[face(0)],
            0,
            &builtin_audio(1),
            ChunkExtras::default(),
            &phase,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("no audio features"), "{e}");
    let m = LatentSync::open(dir.path(), &options).unwrap();
    let f = features(&m, 0.5, 1);
    let mut inf = Inferencer::new(m, InferConfig::default());
    let e = inf
        .run_chunk(
            &[Frame::filled(128, 128, [0, 0, 0])],
            0,
            &builtin_audio(1),
            ChunkExtras::with_features(f.as_ref()),
            &phase,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("128x128") && e.contains("256x256"), "{e}");
}
