//! The built-in mouth model and the scheduler, on a real face crop.

mod common;

use std::sync::{Arc, Mutex};

use common::{astronaut_face, frame_envelope, mouth_darkness, pearson, speech};
use facesync_infer as infer;
use frame::Frame;
use infer::{
    AudioFeatures, ChunkExtras, ChunkInput, InferConfig, InferError, Inferencer, LipSyncModel,
    Mask, MouthModel, MouthParams, MouthState, SilenceGate, StepStats,
};
use progress_core::{Control, Event, Outcome, Phase, Progress};

const FPS: f64 = 25.0;

fn features(samples: &[f32], channels: u16, rate: u32, n_frames: usize) -> AudioFeatures {
    AudioFeatures::from_samples(samples, channels, rate, FPS, n_frames).unwrap()
}

fn cpu_model() -> MouthModel {
    MouthModel::new(gpu::Compute::Cpu, MouthParams::default())
}

fn run(
    model: MouthModel,
    config: InferConfig,
    faces: &[Frame],
    audio: &AudioFeatures,
) -> Vec<Frame> {
    let mut inf = Inferencer::new(model, config);
    inf.run(faces, audio, &Phase::detached("test", None, ""))
        .unwrap()
}

fn max_diff(a: &Frame, b: &Frame) -> u8 {
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap()
}

#[test]
fn silence_leaves_faces_unchanged() {
    let n = 20;
    let face = astronaut_face(256);
    let faces = vec![face.clone(); n];
    let audio = features(&vec![0.0; 44_100 * 2], 2, 44_100, n);
    let out = run(cpu_model(), InferConfig::default(), &faces, &audio);
    assert_eq!(out.len(), n);
    for f in &out {
        assert!(max_diff(f, &face) <= 1, "silence changed a face");
    }
}

#[test]
fn speech_opens_the_mouth_in_time_with_the_audio() {
    let n = 50; // 2 s at 25 fps
    let face = astronaut_face(256);
    let faces = vec![face.clone(); n];
    let audio = features(&speech(44_100, 2, 2.0), 2, 44_100, n);
    let out = run(cpu_model(), InferConfig::default(), &faces, &audio);
    let base = mouth_darkness(&face);
    let dark: Vec<f64> = out.iter().map(|f| mouth_darkness(f) - base).collect();
    let env: Vec<f64> = (0..n).map(|i| frame_envelope(i, FPS)).collect();
    let r = pearson(&dark, &env);
    assert!(
        r >= 0.8,
        "pearson r = {r:.3}\ndarkness {dark:.1?}\nenvelope {env:.2?}"
    );
    // The mouth really opens: the darkest frame is much darker than the closed face.
    let most = dark.iter().copied().fold(0.0, f64::max);
    assert!(most > 25.0, "max extra darkness {most:.1}");
}

/// The silence gate: frames it calls silent keep their mouth whatever the audio says; a gate
/// that calls nothing silent changes nothing.
#[test]
fn frames_the_silence_gate_closes_keep_their_mouth() {
    let n = 25;
    let face = astronaut_face(128);
    let faces = vec![face.clone(); n];
    let audio = features(&speech(16_000, 1, 1.0), 1, 16_000, n);
    let gated = |gate: Option<&SilenceGate>| {
        let mut inf = Inferencer::new(cpu_model(), InferConfig::default());
        let extras = ChunkExtras {
            silence: gate,
            ..ChunkExtras::default()
        };
        inf.run_chunk(
            &faces,
            0,
            &audio,
            extras,
            &Phase::detached("test", None, ""),
        )
        .unwrap()
    };
    let open = gated(None);
    assert!(
        open.iter().any(|f| max_diff(f, &face) > 10),
        "the speech opens the mouth"
    );
    // 0 dBFS: louder than any speech, so every frame is silent.
    let all = SilenceGate::new(&audio, 0.0);
    assert_eq!(all.silent_frames(), n);
    for f in gated(Some(&all)) {
        assert!(max_diff(&f, &face) <= 1, "a silent frame's mouth moved");
    }
    let none = SilenceGate::new(&audio, -100.0);
    assert_eq!(none.silent_frames(), 0);
    assert_eq!(gated(Some(&none)), open);
}

#[test]
fn audio_shorter_than_video_leaves_the_rest_closed() {
    let n = 40; // 1.6 s of video, 0.8 s of audio
    let face = astronaut_face(128);
    let faces = vec![face.clone(); n];
    let audio = features(&speech(16_000, 1, 0.8), 1, 16_000, n);
    let out = run(cpu_model(), InferConfig::default(), &faces, &audio);
    assert!(out[..18].iter().any(|f| max_diff(f, &face) > 10));
    for f in &out[22..] {
        assert!(max_diff(f, &face) <= 1);
    }
}

/// A loud, steady vowel: the mouth fully open in every frame.
fn open_chunk(r: u32, n: usize) -> (Vec<Frame>, AudioFeatures) {
    let mut samples = speech(16_000, 1, 0.15);
    samples.truncate(2400);
    let steady: Vec<f32> = samples[600..2000]
        .iter()
        .copied()
        .cycle()
        .take(16_000)
        .collect();
    (vec![astronaut_face(r); n], features(&steady, 1, 16_000, n))
}

/// Runs `steps` steps on one chunk, returning the per-step residuals and the output.
fn solve(
    compute: gpu::Compute,
    steps: usize,
    faces: &[Frame],
    audio: &AudioFeatures,
) -> (Vec<f64>, Vec<Frame>) {
    let mut model = MouthModel::new(compute, MouthParams::default());
    let mask = model.mask(faces[0].width());
    let chunk = ChunkInput {
        first_frame: 0,
        faces,
        audio,
        mask: &mask,
        features: None,
        mouths: &[],
        silence: None,
    };
    let mut state = model.begin_chunk(&chunk).unwrap();
    let res = (0..steps)
        .map(|k| model.step(&mut state, k, steps).unwrap().residual.unwrap())
        .collect();
    (res, model.finish_chunk(state).unwrap())
}

/// Mean absolute jump across the mask's bottom and side edges minus the same in the
/// original: how visible the seam is, in 8-bit levels.
fn seam(out: &Frame, orig: &Frame, mask: &Mask) -> f64 {
    let [x0, y0, x1, y1] = mask.bbox().unwrap();
    let luma = |f: &Frame, x: u32, y: u32| {
        let [r, g, b] = f.pixel(x, y);
        (f64::from(r) + f64::from(g) + f64::from(b)) / 3.0
    };
    let jump = |f: &Frame, a: (u32, u32), b: (u32, u32)| luma(f, a.0, a.1) - luma(f, b.0, b.1);
    let mut pairs = Vec::new();
    for x in x0..x1 {
        pairs.push(((x, y1 - 1), (x, y1))); // bottom edge
    }
    for y in y0..y1 {
        pairs.push(((x0, y), (x0 - 1, y)));
        pairs.push(((x1 - 1, y), (x1, y)));
    }
    pairs
        .iter()
        .map(|&(a, b)| (jump(out, a, b) - jump(orig, a, b)).abs())
        .sum::<f64>()
        / pairs.len() as f64
}

#[test]
fn poisson_converges_monotonically_and_hides_the_seam() {
    let (faces, audio) = open_chunk(256, 2);
    let (res, out) = solve(gpu::Compute::Cpu, 20, &faces, &audio);
    for w in res.windows(2) {
        assert!(w[1] < w[0], "residual rose: {res:.4?}");
    }
    assert!(res[19] < res[0] * 0.05, "residual {res:.4?}");
    let (_, edited) = solve(gpu::Compute::Cpu, 0, &faces, &audio);
    let mask = MouthParams::default().geometry.mask(256);
    let before = seam(&edited[0], &faces[0], &mask);
    let after = seam(&out[0], &faces[0], &mask);
    assert!(before > 1.0, "the edit leaves a seam to hide ({before:.2})");
    // What is left is the edit's own texture gradients at the edge (the guidance), not a step.
    assert!(
        after < 1.5 && after < before / 4.0,
        "seam {before:.2} -> {after:.2}"
    );
    // And the mouth is still open after blending.
    assert!(mouth_darkness(&out[0]) > mouth_darkness(&faces[0]) + 25.0);
}

#[test]
fn gpu_matches_cpu() {
    let opts = gpu::GpuOptions {
        backend: gpu::BackendChoice::Gpu,
        ..gpu::GpuOptions::from_env()
    };
    let compute = gpu::acquire(&opts)
        .map(gpu::Acquired::into_compute)
        .unwrap_or_else(|e| {
            panic!(
                "NO GPU ADAPTER, the GPU-vs-CPU test cannot run ({e}). Install Mesa's lavapipe \
             (apt-get install mesa-vulkan-drivers libvulkan1) or select an adapter with WGPU_*"
            )
        });
    let (faces, audio) = open_chunk(256, 3);
    let (res_cpu, out_cpu) = solve(gpu::Compute::Cpu, 6, &faces, &audio);
    let (res_gpu, out_gpu) = solve(compute, 6, &faces, &audio);
    for (c, g) in res_cpu.iter().zip(&res_gpu) {
        assert!(
            (c - g).abs() <= 1e-3 * c.max(1e-3),
            "residuals cpu {res_cpu:?} gpu {res_gpu:?}"
        );
    }
    for (c, g) in out_cpu.iter().zip(&out_gpu) {
        assert!(
            max_diff(c, g) <= 1,
            "gpu and cpu differ by {}",
            max_diff(c, g)
        );
        let off = c
            .data()
            .iter()
            .zip(g.data())
            .filter(|(a, b)| a != b)
            .count();
        assert!(off * 1000 <= c.data().len(), "{off} bytes differ");
    }
}

/// Wraps the built-in model, counting steps and cancelling the run after step `cancel_after`.
struct Cancelling {
    inner: MouthModel,
    phase: Phase,
    cancel_after: usize,
    steps: Arc<Mutex<usize>>,
}

impl LipSyncModel for Cancelling {
    type State = MouthState;
    fn mask(&self, size: u32) -> Mask {
        self.inner.mask(size)
    }
    fn begin_chunk(&mut self, chunk: &ChunkInput<'_>) -> Result<MouthState, InferError> {
        self.inner.begin_chunk(chunk)
    }
    fn step(
        &mut self,
        state: &mut MouthState,
        step: usize,
        n: usize,
    ) -> Result<StepStats, InferError> {
        let stats = self.inner.step(state, step, n)?;
        let mut done = self.steps.lock().unwrap();
        *done += 1;
        if *done == self.cancel_after {
            self.phase.cancel_token().cancel();
        }
        Ok(stats)
    }
    fn preview(&mut self, state: &MouthState, index: usize) -> Result<Frame, InferError> {
        self.inner.preview(state, index)
    }
    fn finish_chunk(&mut self, state: MouthState) -> Result<Vec<Frame>, InferError> {
        self.inner.finish_chunk(state)
    }
}

#[test]
fn cancellation_stops_within_one_step() {
    for k in [1, 7, 20, 23] {
        let (faces, audio) = open_chunk(64, 32);
        let phase = Phase::detached("Doing inference", Some(32), "frames");
        let steps = Arc::new(Mutex::new(0));
        let model = Cancelling {
            inner: cpu_model(),
            phase: phase.clone(),
            cancel_after: k,
            steps: Arc::clone(&steps),
        };
        let mut inf = Inferencer::new(model, InferConfig::default());
        let mut err = None;
        for (c, chunk) in faces.chunks(16).enumerate() {
            if let Err(e) = inf.run_chunk(chunk, c * 16, &audio, ChunkExtras::default(), &phase) {
                err = Some(e);
                break;
            }
        }
        assert!(
            matches!(err, Some(InferError::Cancelled(_))),
            "k={k}: {err:?}"
        );
        let done = *steps.lock().unwrap();
        assert!(
            done <= k + 1 && done >= k,
            "cancelled after step {k}, {done} steps ran"
        );
        // Frames count only finished chunks.
        assert_eq!(phase.pos(), if k >= 20 { 16 } else { 0 }, "k={k}");
    }
}

/// A progress run whose one sink keeps every event.
fn recorded_progress() -> (Progress, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = Arc::clone(&events);
    let progress = Progress::builder()
        .sink(move |e: &Event| {
            sink_events.lock().unwrap().push(e.clone());
            Control::Continue
        })
        .start();
    (progress, events)
}

#[test]
fn progress_counts_chunks_steps_and_sends_previews() {
    let (progress, events) = recorded_progress();
    let root = progress.phase("run", None, "");
    let (faces, audio) = open_chunk(64, 40);
    let config = InferConfig {
        steps: 7,
        ..InferConfig::default()
    };
    let mut inf = Inferencer::new(cpu_model(), config);
    let out = inf.run(&faces, &audio, &root).unwrap();
    assert_eq!(out.len(), 40);
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
            Event::Preview { frame, image, .. } => {
                previews.push((*frame, image.width, image.data.len()))
            }
            _ => {}
        }
    }
    let of = |name: &str| {
        finished
            .iter()
            .filter(|f| f.0 == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of("Doing inference"),
        vec![(
            "Doing inference".to_string(),
            Some(40),
            Outcome::Completed,
            40
        )]
    );
    assert_eq!(
        of("steps"),
        vec![("steps".to_string(), Some(7), Outcome::Completed, 7); 3]
    );
    for chunk_start in [0, 16, 32] {
        assert!(
            previews.contains(&(chunk_start, 64, 64 * 64 * 3)),
            "{previews:?}"
        );
    }
}

#[test]
fn wrong_face_size_is_an_error_naming_the_face() {
    let audio = features(&[0.0; 16_000], 1, 16_000, 3);
    let faces = vec![
        Frame::filled(64, 64, [1, 2, 3]),
        Frame::filled(32, 64, [1, 2, 3]),
    ];
    let mut inf = Inferencer::new(cpu_model(), InferConfig::default());
    let err = inf
        .run_chunk(
            &faces,
            5,
            &audio,
            ChunkExtras::default(),
            &Phase::detached("t", None, ""),
        )
        .unwrap_err();
    assert!(err.to_string().contains("face 6 is 32x64"), "{err}");
}

/// A one-shot stand-in with two calls in flight, finishing them out of order (face 1 before
/// face 0, 3 before 2...), as a model whose calls run side by side may: each face becomes a
/// flat frame of its own index. Counts its calls.
struct Swapping {
    calls: Arc<Mutex<usize>>,
    phase: Phase,
    cancel_after: Option<usize>,
}

impl LipSyncModel for Swapping {
    type State = (Vec<Frame>, usize);

    fn mask(&self, size: u32) -> Mask {
        infer::MouthGeometry::default().mask(size)
    }

    fn schedule(&self, _steps: usize, chunk_len: usize) -> infer::Schedule {
        infer::Schedule::OneShot(chunk_len)
    }

    fn begin_chunk(&mut self, chunk: &ChunkInput<'_>) -> Result<Self::State, InferError> {
        Ok((chunk.faces.to_vec(), chunk.first_frame))
    }

    fn step(
        &mut self,
        state: &mut Self::State,
        step: usize,
        n_steps: usize,
    ) -> Result<StepStats, InferError> {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if Some(*calls) == self.cancel_after {
            self.phase.cancel_token().cancel();
        }
        let i = if step.is_multiple_of(2) && step + 1 < n_steps {
            step + 1
        } else if step % 2 == 1 {
            step - 1
        } else {
            step
        };
        let v = (state.1 + i) as u8;
        state.0[i] = Frame::filled(state.0[i].width(), state.0[i].height(), [v, v, v]);
        Ok(StepStats {
            residual: None,
            frames: 1,
        })
    }

    fn preview(&mut self, state: &Self::State, index: usize) -> Result<Frame, InferError> {
        Ok(state.0[index].clone())
    }

    fn finish_chunk(&mut self, state: Self::State) -> Result<Vec<Frame>, InferError> {
        Ok(state.0)
    }
}

#[test]
fn one_shot_results_out_of_order_keep_their_places_and_count_frames() {
    let (faces, audio) = open_chunk(32, 21);
    let (progress, events) = recorded_progress();
    let root = progress.phase("run", None, "");
    let calls = Arc::new(Mutex::new(0));
    let model = Swapping {
        calls: Arc::clone(&calls),
        phase: root.clone(),
        cancel_after: None,
    };
    let mut inf = Inferencer::new(model, InferConfig::default());
    let out = inf.run(&faces, &audio, &root).unwrap();
    root.finish();
    progress.shutdown();
    assert_eq!(*calls.lock().unwrap(), 21, "one call per face");
    for (i, f) in out.iter().enumerate() {
        assert_eq!(f.data()[0], i as u8, "face {i} in its place");
    }
    let events = events.lock().unwrap();
    let names: std::collections::HashMap<_, _> = events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseStarted { id, name, .. } => Some((*id, name.as_str())),
            _ => None,
        })
        .collect();
    assert!(
        !names.values().any(|n| *n == "steps"),
        "no steps phase: {names:?}"
    );
    let finished = events.iter().find_map(|e| match e {
        Event::PhaseFinished {
            id, pos, outcome, ..
        } if names[id] == "Doing inference" => Some((*outcome, *pos)),
        _ => None,
    });
    assert_eq!(
        finished,
        Some((Outcome::Completed, 21)),
        "\"Doing inference\" counts every frame"
    );
    let previews: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Preview { frame, .. } => Some(*frame),
            _ => None,
        })
        .collect();
    assert!(
        previews.contains(&0) && previews.contains(&16),
        "{previews:?}"
    );
}

#[test]
fn one_shot_cancel_stops_before_the_next_call() {
    for k in [1, 2, 5, 15] {
        let (faces, audio) = open_chunk(32, 16);
        let phase = Phase::detached("Doing inference", Some(16), "frames");
        let calls = Arc::new(Mutex::new(0));
        let model = Swapping {
            calls: Arc::clone(&calls),
            phase: phase.clone(),
            cancel_after: Some(k),
        };
        let mut inf = Inferencer::new(model, InferConfig::default());
        let r = inf.run_chunk(&faces, 0, &audio, ChunkExtras::default(), &phase);
        assert!(matches!(r, Err(InferError::Cancelled(_))), "k={k}: {r:?}");
        assert_eq!(*calls.lock().unwrap(), k, "no call after the cancel");
        assert_eq!(phase.pos(), k as u64, "k={k}: the finished frames counted");
    }
}
