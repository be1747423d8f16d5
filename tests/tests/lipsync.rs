//! End-to-end checks that the pipeline really lip-syncs: a pipeline that passes every frame
//! through untouched (or that loses the face) fails them.
//!
//! The built-in sample's frames and audio are streamed from memory through `run_with`
//! ([`RawSource`] → [`RawSink`]), so input and output are compared without any codec loss.
//! The audio is the sample's speech for the first half and digital silence for the second.
//! Where a pixel lies is decided in the face's own crop coordinates, from face-proc's
//! transform for that input frame (run here on the input, independently of the pipeline).

use std::sync::{Arc, Mutex};

use face_proc::{FaceAction, FaceConfig, FaceProcessor, FaceStatus};
use frame::{Affine2, Frame};
use media_io::Rational;
use pipeline::sample::{photo, render_frame, speech};
use pipeline::{Backend, PipelineConfig, RawAudio, RawSink, RawSource, RunOptions, run_with};
use progress_core::{Control, Event, Progress, RecordType};

const SIZE: u32 = 256;
const FPS: u32 = 25;
const FRAMES: usize = 50; // 2 s
const RATE: u32 = 16_000;
/// Speech until here, silence after.
const SPEECH_SECS: f64 = 1.0;

struct Run {
    input: Vec<Frame>,
    output: Vec<Frame>,
    /// Per frame: (faces, action) of its face-status event.
    status: Vec<Option<(u32, FaceAction)>>,
}

fn lipsync(config: &PipelineConfig) -> Run {
    let photo = photo();
    let input: Vec<Frame> = (0..FRAMES)
        .map(|i| render_frame(&photo, SIZE, SIZE, i as f64 / f64::from(FPS)))
        .collect();
    let bytes: Vec<u8> = input
        .iter()
        .flat_map(|f| f.data().iter().copied())
        .collect();
    let mut samples = speech(FRAMES as f64 / f64::from(FPS), RATE);
    let cut = (SPEECH_SECS * f64::from(RATE)) as usize;
    samples[cut..].iter_mut().for_each(|s| *s = 0.0);
    let mut audio = RawAudio::interleaved(&samples, 1, RATE, "speech").unwrap();

    let status = Arc::new(Mutex::new(vec![None; FRAMES]));
    let seen = status.clone();
    let progress = Progress::builder()
        .sink(move |e: &Event| {
            if let Some(s) = FaceStatus::from_event(e) {
                seen.lock().unwrap()[s.frame as usize] = Some((s.faces, s.action));
            }
            Control::Continue
        })
        .start();
    let job = progress.phase("Lip sync", None, "frames");
    let mut source = RawSource::new(&bytes, SIZE, SIZE, Rational::new(FPS, 1), "sample").unwrap();
    let mut out = Vec::new();
    let stats = run_with(
        config,
        &mut source,
        &mut audio,
        Box::new(RawSink::new(&mut out)),
        &job,
    )
    .unwrap();
    job.finish();
    drop(job);
    progress.shutdown();
    assert_eq!(stats.frames, FRAMES as u64);
    let frame_len = (SIZE * SIZE * 3) as usize;
    assert_eq!(out.len(), FRAMES * frame_len);
    let output = out
        .chunks_exact(frame_len)
        .map(|d| Frame::new(SIZE, SIZE, d.to_vec()).unwrap())
        .collect();
    let status = status.lock().unwrap().clone();
    Run {
        input,
        output,
        status,
    }
}

/// Frame → crop (units of the crop side) for every input frame, from face-proc itself.
fn face_transforms(frames: &[Frame]) -> Vec<Affine2> {
    let config = FaceConfig {
        resolution: SIZE,
        ..FaceConfig::default()
    };
    let mut faces = FaceProcessor::new(&gpu::Compute::Cpu, config).unwrap();
    let phase = progress_core::Phase::detached("faces", None, "frames");
    let records = faces.process_batch(frames, &phase).unwrap();
    records
        .iter()
        .map(|r| {
            assert!(
                r.found,
                "face-proc finds the sample's face in frame {}",
                r.index
            );
            r.to_crop
        })
        .collect()
}

/// Pixel statistics of `a` against `b` over the pixels whose crop coordinates `(u, v)` (in
/// units of the crop side) satisfy `inside`: (pixel count, mean absolute difference over the
/// channels, largest difference).
fn compare(
    a: &Frame,
    b: &Frame,
    to_crop: &Affine2,
    inside: impl Fn(f64, f64) -> bool,
) -> (usize, f64, u8) {
    let (mut n, mut sum, mut max) = (0usize, 0u64, 0u8);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let [u, v] = to_crop.apply([f64::from(x) + 0.5, f64::from(y) + 0.5]);
            let (u, v) = (u / f64::from(SIZE), v / f64::from(SIZE));
            if !inside(u, v) {
                continue;
            }
            n += 1;
            for (p, q) in a.pixel(x, y).iter().zip(b.pixel(x, y)) {
                let d = p.abs_diff(q);
                sum += u64::from(d);
                max = max.max(d);
            }
        }
    }
    (n, sum as f64 / (3 * n.max(1)) as f64, max)
}

/// The mouth: around the lips' centre line of the aligned crop (`infer`'s `MouthGeometry`).
fn mouth(u: f64, v: f64) -> bool {
    (0.32..0.68).contains(&u) && (0.58..0.80).contains(&v)
}

/// Far from the face: well outside the aligned crop.
fn far(u: f64, v: f64) -> bool {
    !((-0.25..1.25).contains(&u) && (-0.25..1.25).contains(&v))
}

/// The mean difference over the mouth region, output against input, per frame.
fn mouth_diffs(run: &Run, transforms: &[Affine2]) -> Vec<f64> {
    run.output
        .iter()
        .zip(&run.input)
        .zip(transforms)
        .map(|((out, input), t)| compare(out, input, t, mouth).1)
        .collect()
}

#[test]
fn the_sample_is_lip_synced_where_there_is_speech_and_left_alone_elsewhere() {
    let config = PipelineConfig::from(RunOptions {
        backend: Backend::Cpu,
        steps: 8,
        ..RunOptions::default()
    });
    let run = lipsync(&config);

    // Every frame reports its face.
    for (i, status) in run.status.iter().enumerate() {
        assert_eq!(*status, Some((1, FaceAction::Aligned)), "frame {i}");
    }

    let transforms = face_transforms(&run.input);
    let mouth = mouth_diffs(&run, &transforms);
    // Speech: each syllable (4 a second, voiced 60 % of the time) opens the mouth: the mean
    // difference over the mouth region is tens of levels at its peak (the inner mouth is
    // darkened, the lower lip moves by up to 18 px at full opening).
    let per_syllable = f64::from(FPS) / 4.0;
    for k in 0..(SPEECH_SECS * 4.0) as usize {
        let frames =
            (k as f64 * per_syllable).ceil() as usize..((k + 1) as f64 * per_syllable) as usize;
        let peak = mouth[frames.clone()].iter().copied().fold(0.0, f64::max);
        assert!(
            peak > 15.0,
            "syllable {k} (frames {frames:?}) does not move the mouth: mean differences {:?}",
            &mouth[frames.clone()]
        );
    }
    // Silence (past the audio window's reach, 3 frames): the frames come out as they went in.
    let silent = (SPEECH_SECS * f64::from(FPS)) as usize + 3;
    let frames = run.output.iter().zip(&run.input).zip(&transforms);
    for (i, ((out, input), t)) in frames.enumerate().skip(silent) {
        assert!(
            out == input,
            "frame {i} (silence) changed: (pixels, mean, max difference) {:?}",
            compare(out, input, t, |_, _| true)
        );
    }
    // Far from the face nothing changes, ever.
    for (i, ((out, input), t)) in run
        .output
        .iter()
        .zip(&run.input)
        .zip(&transforms)
        .enumerate()
    {
        let (n, _, max) = compare(out, input, t, far);
        assert!(n > 50_000, "frame {i}: {n} pixels far from the face");
        assert_eq!(max, 0, "frame {i}: a pixel far from the face changed");
    }
}
