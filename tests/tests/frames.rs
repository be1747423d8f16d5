//! `run_with`'s contract with frame sources and sinks: errors name the source, and a sink is
//! finished only when every stage succeeded (dropped, it leaves nothing behind).

use frame::Frame;
use media_io::{Rational, VideoInfo};
use pipeline::{
    Backend, FrameSource, PipelineConfig, PipelineError, RawAudio, RawSink, RawSource, RunOptions,
    run_with,
};
use progress_core::Phase;

fn config() -> PipelineConfig {
    PipelineConfig::from(RunOptions {
        backend: Backend::Cpu,
        steps: 1,
        chunk: 4,
        ..RunOptions::default()
    })
}

fn audio(seconds: f64) -> RawAudio<'static> {
    let samples = pipeline::sample::speech(seconds, 16_000).leak();
    RawAudio::interleaved(samples, 1, 16_000, "speech").unwrap()
}

fn frames(n: usize, size: u32) -> Vec<u8> {
    let photo = pipeline::sample::photo();
    (0..n)
        .flat_map(|i| {
            pipeline::sample::render_frame(&photo, size, size, i as f64 / 25.0).into_data()
        })
        .collect()
}

#[test]
fn raw_frames_stream_through_and_loop_ping_pong() {
    let input = frames(6, 64);
    let mut source = RawSource::new(&input, 64, 64, Rational::new(25, 1), "frames").unwrap();
    let mut out = b"kept".to_vec();
    let phase = Phase::detached("Lip sync", None, "frames");
    let stats = run_with(
        &config(),
        &mut source,
        &mut audio(0.4),
        Box::new(RawSink::new(&mut out)),
        &phase,
    )
    .unwrap();
    // 0.4 s of audio at 25 fps: 10 frames from 6, played 0..5 then 5..2 (ping-pong).
    assert_eq!((stats.frames, stats.input_frames), (10, 6));
    assert_eq!(&out[..4], b"kept", "the sink appends");
    assert_eq!(out.len(), 4 + 10 * 64 * 64 * 3);
}

#[test]
fn a_cancelled_run_leaves_the_sink_as_it_was() {
    let input = frames(4, 64);
    let mut source = RawSource::new(&input, 64, 64, Rational::new(25, 1), "frames").unwrap();
    let mut out = b"kept".to_vec();
    let phase = Phase::detached("Lip sync", None, "frames");
    phase.cancel_token().cancel();
    let err = run_with(
        &config(),
        &mut source,
        &mut audio(0.4),
        Box::new(RawSink::new(&mut out)),
        &phase,
    )
    .unwrap_err();
    assert!(matches!(err, PipelineError::Cancelled { .. }), "{err}");
    assert_eq!(
        out, b"kept",
        "nothing of the cancelled run is left in the sink"
    );
}

/// The encoder looks at the cancel token before each frame, not only between chunks: a sink
/// whose first write cancels the run gets no second frame of that chunk.
#[test]
fn a_cancel_stops_the_encoder_inside_a_chunk() {
    struct CancelOnWrite {
        token: progress_core::CancelToken,
        writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }
    impl pipeline::FrameSink for CancelOnWrite {
        fn write_frame(&mut self, _: &Frame) -> Result<(), PipelineError> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.token.cancel();
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<(), PipelineError> {
            panic!("a cancelled run's sink is not finished")
        }
    }
    let input = frames(8, 64);
    let mut source = RawSource::new(&input, 64, 64, Rational::new(25, 1), "frames").unwrap();
    let phase = Phase::detached("Lip sync", None, "frames");
    let writes = std::sync::Arc::default();
    let sink = CancelOnWrite {
        token: phase.cancel_token().clone(),
        writes: std::sync::Arc::clone(&writes),
    };
    let err = run_with(
        &config(),
        &mut source,
        &mut audio(0.32),
        Box::new(sink),
        &phase,
    )
    .unwrap_err();
    assert!(matches!(err, PipelineError::Cancelled { .. }), "{err}");
    assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn bad_frames_are_errors_naming_the_source() {
    let err = RawSource::new(&[0; 100], 8, 8, Rational::new(25, 1), "frames from Python")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "frames from Python: 100 bytes is not a whole, non-zero number of 8x8 RGB8 frames"
    );

    /// Says 32x32, gives a 16x16 frame.
    struct Liar;
    impl FrameSource for Liar {
        fn info(&self) -> VideoInfo {
            VideoInfo {
                width: 32,
                height: 32,
                fps: Rational::new(25, 1),
                frame_count: None,
            }
        }
        fn name(&self) -> String {
            "the liar".into()
        }
        fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, PipelineError> {
            *frame = Frame::filled(16, 16, [1, 2, 3]);
            Ok(true)
        }
    }
    let mut out = Vec::new();
    let phase = Phase::detached("Lip sync", None, "frames");
    let err = run_with(
        &config(),
        &mut Liar,
        &mut audio(0.2),
        Box::new(RawSink::new(&mut out)),
        &phase,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "the liar: frame is 16x16, expected 32x32 like the first frame"
    );
    assert!(out.is_empty());
}
