//! Wav2Lip-96 and EDTalk-256 through ONNX Runtime, on files generated at test time
//! (`make_models.py`, random weights, the real contracts) and the mel features against an
//! independent numpy reference (`mel_reference.py`).
//!
//! These tests need the ONNX Runtime library and a Python with `onnx` and `numpy`; both are
//! found by `test_kit` (the test environment `cargo xtask test` makes, unless
//! `ORT_DYLIB_PATH` / `FACESYNC_TEST_PYTHON` say otherwise). Under `cargo xtask test`
//! (`FACESYNC_REQUIRE_ORT=1`) a missing one fails the test; in a bare `cargo test` the test
//! prints why it is skipped and returns.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use facesync_onnx_models as onnx_models;
use frame::Frame;
use infer::{
    AudioFeatures, ChunkExtras, FrameFeatures, InferConfig, InferError, Inferencer, LipMelStream,
    SilenceGate,
};
use onnx_models::{LipSyncKind, OnnxError, OnnxLipSync, ProviderRequest, SessionOptions, session};
use progress_core::Phase;

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("facesync-onnx-mel-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

type Env = test_kit::models::TestModels;

fn env() -> Option<Env> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-models");
    test_kit::or_skip!(test_kit::models::generate(&dir))
}

fn load(env: &Env, file: &str) -> Result<Arc<onnx_models::OnnxSession>, OnnxError> {
    session::load(&SessionOptions {
        model: env.dir.join(file),
        provider: ProviderRequest::Cpu,
        threads: 2,
        parallel: 1,
        runtime: None,
    })
}

/// The model of `kind` in `file`, loaded on the CPU.
fn model(env: &Env, kind: LipSyncKind, file: &str, weight: f32) -> OnnxLipSync {
    OnnxLipSync::new(kind, load(env, file).unwrap(), weight).unwrap()
}

/// A face-like crop: a smooth gradient with texture, 256×256.
fn face(seed: u32) -> Frame {
    let r = 256u32;
    let mut data = Vec::with_capacity((r * r * 3) as usize);
    for y in 0..r {
        for x in 0..r {
            let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ seed.wrapping_mul(31)) % 23;
            data.extend([
                150 + (x / 4) as u8 / 2 + n as u8,
                (100 + (y / 4) as u8 / 2) + n as u8,
                80 + n as u8 * 2,
            ]);
        }
    }
    Frame::new(r, r, data).unwrap()
}

/// One second of "speech" at 16 kHz: an amplitude-modulated chord.
fn speech() -> Vec<f32> {
    (0..16_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            let env = (t * 2.0 * std::f32::consts::PI * 3.0).sin().abs();
            env * (0.3 * (t * 2.0 * std::f32::consts::PI * 220.0).sin()
                + 0.2 * (t * 2.0 * std::f32::consts::PI * 1250.0).sin())
        })
        .collect()
}

fn features(audio: &[f32], n: usize) -> (AudioFeatures, infer::LipMel) {
    let builtin = AudioFeatures::from_samples(audio, 1, 16_000, 25.0, n).unwrap();
    let mut s = LipMelStream::new(1, 16_000).unwrap();
    for b in audio.chunks(3000) {
        s.push(b).unwrap();
    }
    (builtin, s.finish(25.0, n).unwrap())
}

/// Runs `faces` as one chunk with [`speech`] and its lip-sync mel features.
fn run(
    model: OnnxLipSync,
    faces: &[Frame],
    phase: &Phase,
) -> (Result<Vec<Frame>, InferError>, Phase) {
    let (audio, mel) = features(&speech(), faces.len());
    let out = run_with(model, faces, &audio, &mel, phase);
    (out, phase.clone())
}

/// A face's 68 landmarks (dlib layout) in a 256 crop: the jaw a half ellipse from (40, 120)
/// through the chin (128, 240) to (216, 120), brows, eyes, nose and lips inside it.
fn landmarks_68() -> Vec<[f32; 2]> {
    let mut p = Vec::with_capacity(68);
    for i in 0..17 {
        let t = std::f32::consts::PI * i as f32 / 16.0;
        p.push([128.0 - 88.0 * t.cos(), 120.0 + 120.0 * t.sin()]);
    }
    for i in 0..10 {
        p.push([60.0 + 15.0 * i as f32, 80.0]);
    }
    for i in 0..9 {
        p.push([128.0 + 4.0 * (i as f32 - 4.0), 100.0 + 6.0 * i as f32]);
    }
    for i in 0..12 {
        let x = if i < 6 { 70.0 } else { 160.0 } + 5.0 * (i % 6) as f32;
        p.push([x, 100.0 + (i % 2) as f32 * 4.0]);
    }
    for i in 0..20 {
        p.push([95.0 + 3.3 * i as f32, 185.0 + (i % 3) as f32 * 5.0]);
    }
    assert_eq!(p.len(), 68);
    p
}

/// Each face's placement: [`landmarks_68`] (the only part Wav2Lip and EDTalk read).
fn placements(n: usize) -> Vec<Option<infer::MouthPlacement>> {
    let lm = landmarks_68();
    let m = infer::MouthPlacement {
        region: Vec::new(),
        corners: [lm[48], lm[54]],
        upper_inner: lm[62],
        lower_inner: lm[66],
        chin: lm[8],
        jaw_half_width: 80.0,
        landmarks_68: lm,
    };
    vec![Some(m); n]
}

/// Runs `faces` as one chunk with the given audio and model features (every face with the
/// 68 landmarks of [`landmarks_68`]).
fn run_with(
    model: OnnxLipSync,
    faces: &[Frame],
    audio: &AudioFeatures,
    features: &dyn FrameFeatures,
    phase: &Phase,
) -> Result<Vec<Frame>, InferError> {
    let mut inf = Inferencer::new(
        model,
        InferConfig {
            chunk_size: faces.len(),
            ..InferConfig::default()
        },
    );
    let mouths = placements(faces.len());
    let extras = ChunkExtras {
        features: Some(features),
        mouths: &mouths,
        silence: None,
    };
    inf.run_chunk(faces, 0, audio, extras, phase)
}

/// Cancels `phase` from another thread as soon as it has counted `frames`.
fn cancel_when_counted(phase: &Phase, frames: u64) -> std::thread::JoinHandle<()> {
    let phase = phase.clone();
    std::thread::spawn(move || {
        while phase.pos() < frames {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        phase.cancel_token().cancel();
    })
}

/// The largest difference of one byte between two frames (`None` for empty frames).
fn worst_difference(a: &Frame, b: &Frame) -> Option<u8> {
    a.data()
        .iter()
        .zip(b.data())
        .map(|(p, q)| p.abs_diff(*q))
        .max()
}

fn changed_rows(a: &Frame, b: &Frame) -> (usize, usize) {
    let w = a.width() as usize * 3;
    let rows: Vec<usize> = (0..a.height() as usize)
        .filter(|&y| a.data()[y * w..(y + 1) * w] != b.data()[y * w..(y + 1) * w])
        .collect();
    (*rows.first().unwrap_or(&0), *rows.last().unwrap_or(&0))
}

/// Wav2Lip counts every frame and returns the crop FaceFusion would paste (its output
/// stretched back over the landmarks' box, every pixel of the crop); a face without the 68
/// landmarks (a frame without a mesh) is counted and left as it is.
#[test]
fn wav2lip_counts_frames_and_leaves_faces_without_landmarks() {
    let Some(env) = &env() else { return };
    let faces: Vec<Frame> = (0..4).map(face).collect();
    let phase = Phase::detached("Doing inference", Some(4), "frames");
    let (out, phase) = run(
        model(env, LipSyncKind::Wav2Lip, "wav2lip_96.onnx", 0.5),
        &faces,
        &phase,
    );
    let out = out.unwrap();
    assert_eq!(phase.pos(), 4, "one-shot: every frame counted");
    for (a, b) in faces.iter().zip(&out) {
        assert_eq!((b.width(), b.height()), (a.width(), a.height()));
        let (first, last) = changed_rows(a, b);
        assert!(first < 5 && last > 250, "changed rows {first}..{last}");
    }
    let (audio, mel) = features(&speech(), faces.len());
    let mut inf = Inferencer::new(
        model(env, LipSyncKind::Wav2Lip, "wav2lip_96.onnx", 0.5),
        InferConfig {
            chunk_size: 4,
            ..InferConfig::default()
        },
    );
    let phase = Phase::detached("Doing inference", Some(4), "frames");
    let mut mouths = placements(4);
    mouths[1] = None;
    mouths[2].as_mut().unwrap().landmarks_68.clear();
    let extras = ChunkExtras {
        features: Some(&mel),
        mouths: &mouths,
        silence: None,
    };
    let out = inf.run_chunk(&faces, 0, &audio, extras, &phase).unwrap();
    assert_eq!(phase.pos(), 4);
    assert_ne!(out[0], faces[0]);
    assert_eq!(out[1], faces[1], "no placement: left as it is");
    assert_eq!(out[2], faces[2], "no landmarks: left as it is");
    assert_ne!(out[3], faces[3]);
}

/// The silence gate: a silent frame gets FaceFusion's empty audio frame (every mel value −4)
/// whatever its own window holds; without the gate it gets its window.
#[test]
fn wav2lip_gives_silent_frames_the_empty_audio_frame() {
    let Some(env) = &env() else { return };
    let faces: Vec<Frame> = (0..2).map(face).collect();
    let mouths = placements(2);
    let (audio, _) = features(&speech(), faces.len());
    let all_silent = SilenceGate::from_levels(&[-90.0, -90.0], 25.0, -50.0);
    let go = |features: &dyn FrameFeatures, silence: Option<&SilenceGate>| {
        let mut inf = Inferencer::new(
            model(env, LipSyncKind::Wav2Lip, "wav2lip_96.onnx", 0.5),
            InferConfig {
                chunk_size: 2,
                ..InferConfig::default()
            },
        );
        let phase = Phase::detached("Doing inference", Some(2), "frames");
        let extras = ChunkExtras {
            features: Some(features),
            mouths: &mouths,
            silence,
        };
        inf.run_chunk(&faces, 0, &audio, extras, &phase).unwrap()
    };
    // Alternating: frame 0's window is silence (−4), frame 1's full scale (4).
    let gated = go(&Alternating, Some(&all_silent));
    let open = go(&Alternating, None);
    let silent = go(&Constant(-4.0), None);
    assert_eq!(gated, silent, "gated frames get the empty audio frame");
    assert_eq!(gated[0], open[0], "frame 0's own window is already silence");
    assert_ne!(
        gated[1], open[1],
        "without the gate frame 1 gets its loud window"
    );
}

/// The lip strength: Wav2Lip's mel scaled by 2×weight reaches the model (0 and 1 differ),
/// and a weight outside 0–1 is refused, naming the range.
#[test]
fn wav2lip_weight_scales_the_mel_and_is_checked() {
    let Some(env) = &env() else { return };
    let faces: Vec<Frame> = (0..2).map(face).collect();
    let out = |w| {
        let m = model(env, LipSyncKind::Wav2Lip, "wav2lip_96.onnx", w);
        let p = Phase::detached("Doing inference", Some(2), "frames");
        run(m, &faces, &p).0.unwrap()
    };
    assert_ne!(out(0.0)[0], out(1.0)[0], "the weight reaches the model");
    let e = OnnxLipSync::new(
        LipSyncKind::Wav2Lip,
        load(env, "wav2lip_96.onnx").unwrap(),
        1.5,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("0 to 1"), "{e}");
}

#[test]
fn dynamic_batch_gives_the_fixed_batch_result() {
    let Some(env) = &env() else { return };
    let faces: Vec<Frame> = (0..3).map(face).collect();
    let fixed = model(env, LipSyncKind::Wav2Lip, "wav2lip_96.onnx", 0.5);
    let dynamic = model(env, LipSyncKind::Wav2Lip, "wav2lip_96_dyn.onnx", 0.5);
    assert!(dynamic.dynamic_batch());
    let p = Phase::detached("Doing inference", Some(3), "frames");
    let a = run(fixed, &faces, &p).0.unwrap();
    let p = Phase::detached("Doing inference", Some(3), "frames");
    let b = run(dynamic, &faces, &p).0.unwrap();
    for (x, y) in a.iter().zip(&b) {
        let worst = worst_difference(x, y);
        assert!(
            worst <= Some(1),
            "fixed and dynamic batch differ by {worst:?}"
        );
    }
}

#[test]
fn edtalk_runs_with_its_weight() {
    let Some(env) = &env() else { return };
    let faces: Vec<Frame> = (0..2).map(face).collect();
    let out = |w| {
        let m = model(env, LipSyncKind::EdTalk, "edtalk_256.onnx", w);
        let p = Phase::detached("Doing inference", Some(2), "frames");
        run(m, &faces, &p).0.unwrap()
    };
    let (a, b) = (out(0.0), out(1.0));
    assert_ne!(a[0], faces[0]);
    assert_ne!(a[0], b[0], "the weight input reaches the model");
}

#[test]
fn cancel_stops_between_model_calls() {
    let Some(env) = &env() else { return };
    let faces: Vec<Frame> = (0..6).map(face).collect();
    let model = model(env, LipSyncKind::Wav2Lip, "wav2lip_96.onnx", 0.5);
    let phase = Phase::detached("Doing inference", Some(6), "frames");
    let watcher = cancel_when_counted(&phase, 2);
    let (out, phase) = run(model, &faces, &phase);
    watcher.join().unwrap();
    assert!(matches!(out, Err(InferError::Cancelled(_))), "{out:?}");
    assert!(
        phase.pos() >= 2 && phase.pos() < 6,
        "stopped mid-chunk at {}",
        phase.pos()
    );
}

#[test]
fn bad_files_name_the_file_and_the_problem() {
    let Some(env) = &env() else { return };
    let check = |file: &str, kind: LipSyncKind, expect: &[&str]| {
        let e = load(env, file)
            .and_then(|s| OnnxLipSync::new(kind, s, 0.5))
            .unwrap_err()
            .to_string();
        assert!(e.contains(file), "{e}");
        for word in expect {
            assert!(e.contains(word), "{file}: `{word}` not in: {e}");
        }
    };
    check("missing.onnx", LipSyncKind::Wav2Lip, &["No such file"]);
    check(
        "not_onnx.onnx",
        LipSyncKind::Wav2Lip,
        &["not a loadable ONNX model"],
    );
    check(
        "bad_name.onnx",
        LipSyncKind::Wav2Lip,
        &["`source`", "no such input", "audio"],
    );
    check(
        "bad_size.onnx",
        LipSyncKind::Wav2Lip,
        &["`target`", "axis 2 is 128"],
    );
    check(
        "wav2lip_96.onnx",
        LipSyncKind::EdTalk,
        &["`target`", "axis 1 is 6"],
    );
}

#[test]
fn a_model_loads_once_per_process() {
    let Some(env) = &env() else { return };
    let a = load(env, "edtalk_256.onnx").unwrap();
    let b = load(env, "edtalk_256.onnx").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn gpu_request_without_a_gpu_provider_is_an_error() {
    let Some(env) = &env() else { return };
    let r = session::load(&SessionOptions {
        model: env.dir.join("edtalk_256.onnx"),
        provider: ProviderRequest::Gpu,
        threads: 1,
        parallel: 1,
        runtime: None,
    });
    match r {
        // The CPU wheel: no CUDA provider at all; a GPU wheel on a machine without CUDA:
        // registration fails. Either way the message names the provider.
        Err(e @ OnnxError::ProviderUnavailable { .. }) => {
            assert!(e.to_string().contains("CUDA"), "{e}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(s) => assert_eq!(s.provider(), onnx_models::Provider::Cuda),
    }
}

#[test]
fn mel_features_match_the_numpy_reference() {
    let Some(env) = &env() else { return };
    // 1.3 s of speech-like audio with a silent gap, at 16 kHz (no resampling in the way).
    let mut audio = speech();
    audio.extend(std::iter::repeat_n(0.0, 2000));
    audio.extend(speech().iter().take(3000).map(|v| v * 0.5));
    let dir = tempdir();
    let (wav, out) = (dir.join("mel_in.f32"), dir.join("mel_out.f32"));
    let bytes: Vec<u8> = audio.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&wav, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mel_reference.py");
    let status = Command::new(&env.python)
        .args([script.as_os_str(), wav.as_os_str(), out.as_os_str()])
        .status()
        .unwrap();
    assert!(status.success());
    let reference: Vec<f32> = std::fs::read(&out)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    let (_, mel) = features(&audio, 30);
    let ours: Vec<f32> = mel.columns().iter().flatten().copied().collect();
    assert_eq!(ours.len(), reference.len(), "column count");
    // Tolerance: 1e-4 on the ±4 scale everywhere (both in f64 up to the log; the issue's
    // limit for the mel windows), and 99 % of values within 1e-5.
    let diffs: Vec<f32> = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let worst = diffs.iter().copied().fold(0.0, f32::max);
    let close = diffs.iter().filter(|d| **d <= 1e-5).count() as f64 / diffs.len() as f64;
    assert!(worst <= 1e-4, "worst difference {worst}");
    assert!(close >= 0.99, "only {close} within 1e-5");
}

/// Mel windows alternating between silence (-4) and full scale (4) from frame to frame.
#[derive(Debug)]
struct Alternating;

impl FrameFeatures for Alternating {
    fn window_len(&self) -> usize {
        80 * 16
    }

    fn window_into(&self, frame: usize, out: &mut [f32]) {
        out.fill(if frame.is_multiple_of(2) { -4.0 } else { 4.0 });
    }
}

/// Every mel value the same.
#[derive(Debug)]
struct Constant(f32);

impl FrameFeatures for Constant {
    fn window_len(&self) -> usize {
        80 * 16
    }

    fn window_into(&self, _frame: usize, out: &mut [f32]) {
        out.fill(self.0);
    }
}

fn load_parallel(env: &Env, threads: usize) -> Arc<onnx_models::OnnxSession> {
    session::load(&SessionOptions {
        model: env.dir.join("wav2lip_96.onnx"),
        provider: ProviderRequest::Cpu,
        threads,
        parallel: 2,
        runtime: None,
    })
    .unwrap()
}

#[test]
fn calls_side_by_side_keep_each_face_in_its_place() {
    let Some(env) = &env() else { return };
    // An odd count: the chunk ends with one call running alone.
    let faces: Vec<Frame> = (0..5).map(face).collect();
    // The reference: the same weights with a dynamic batch axis, the chunk in one call.
    let one = model(env, LipSyncKind::Wav2Lip, "wav2lip_96_dyn.onnx", 0.5);
    assert!(one.dynamic_batch());
    let session = load_parallel(env, 1);
    assert_eq!(session.parallel(), 2);
    let (calls_before, _) = session.call_stats();
    let two = OnnxLipSync::new(LipSyncKind::Wav2Lip, session.clone(), 0.5).unwrap();
    // Mel windows as far apart as they go (silence, full scale) from frame to frame: the
    // random-weight model hardly hears speech, but a face run with its neighbour's window
    // differs from the one-session result by more than the tolerance.
    let (audio, _) = features(&speech(), faces.len());
    let run = |model: OnnxLipSync, p: &Phase| run_with(model, &faces, &audio, &Alternating, p);
    let p = Phase::detached("Doing inference", Some(5), "frames");
    let a = run(one, &p).unwrap();
    let p = Phase::detached("Doing inference", Some(5), "frames");
    let b = run(two, &p).unwrap();
    assert_eq!(p.pos(), 5, "every frame counted");
    assert_eq!(
        session.call_stats().0 - calls_before,
        5,
        "one call per face"
    );
    assert_eq!(b.len(), 5);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_ne!(y, &faces[i], "face {i} went through the model");
        let worst = worst_difference(x, y);
        assert!(
            worst <= Some(1),
            "face {i}: one call per chunk and two calls side by side differ by {worst:?}"
        );
    }
}

#[test]
fn cancel_with_calls_side_by_side_leaves_no_call_running() {
    let Some(env) = &env() else { return };
    let faces: Vec<Frame> = (0..8).map(face).collect();
    // Its own sessions (threads 2): the call count is this test's alone.
    let session = load_parallel(env, 2);
    let model = OnnxLipSync::new(LipSyncKind::Wav2Lip, session.clone(), 0.5).unwrap();
    let phase = Phase::detached("Doing inference", Some(8), "frames");
    let watcher = cancel_when_counted(&phase, 2);
    let (out, phase) = run(model, &faces, &phase);
    watcher.join().unwrap();
    assert!(matches!(out, Err(InferError::Cancelled(_))), "{out:?}");
    assert!(
        phase.pos() >= 2 && phase.pos() < 8,
        "stopped mid-chunk at {}",
        phase.pos()
    );
    // The calls started before the cancel ended with the chunk: none finishes later.
    let (calls, _) = session.call_stats();
    assert!(
        calls <= phase.pos() + 2,
        "{calls} calls: more than the frames counted ({}) and the 2 running",
        phase.pos()
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        session.call_stats().0,
        calls,
        "a model call outlived the chunk"
    );
}
