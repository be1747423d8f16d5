//! End-to-end: the whole pipeline through the library, as an embedder calls it.

use std::path::Path;
use std::time::Duration;

use facesync_tests::{listing, numbered_video, read_video, run_with_json, sample_inputs, tone_wav};
use media_io::Rational;
use pipeline::{Backend, Inputs, LengthPolicy, PipelineConfig, PipelineError, RunOptions};
use progress_core::{Control, Event, Progress};

fn config(backend: Backend) -> PipelineConfig {
    PipelineConfig {
        options: RunOptions {
            backend,
            ..RunOptions::default()
        },
        y4m_chroma: media_io::Y4mChroma::C444,
        ..PipelineConfig::default()
    }
}

fn check_sample_run(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = sample_inputs(dir.path(), 1.2);
    let out = dir.path().join("out.y4m");
    let (result, _) = run_with_json(&config(backend), &inputs, &out);
    let summary = result.unwrap();
    let (in_info, _) = read_video(&inputs.video);
    let (out_info, frames) = read_video(&out);
    assert_eq!(frames.len(), 30, "{backend:?}");
    assert_eq!(summary.frames, 30);
    assert_eq!(in_info.frame_count, Some(30));
    assert_eq!(out_info.fps, Rational::new(25, 1));
    assert_eq!((out_info.width, out_info.height), (160, 160));
    assert_eq!(
        listing(dir.path()),
        ["out.y4m", "sample.wav", "sample.y4m"],
        "no temporary files left"
    );
}

#[test]
fn sample_runs_on_cpu() {
    check_sample_run(Backend::Cpu);
}

#[test]
fn sample_runs_on_the_vulkan_adapter() {
    check_sample_run(Backend::Gpu);
}

#[test]
fn json_events_are_well_formed_and_end_with_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = sample_inputs(dir.path(), 1.2);
    let (result, events) =
        run_with_json(&config(Backend::Auto), &inputs, &dir.path().join("o.y4m"));
    result.unwrap();
    let kind = |e: &serde_json::Value| e["type"].as_str().unwrap().to_string();
    assert_eq!(kind(&events[0]), "run_started");
    assert_eq!(events[0]["schema"], 1);
    let last = events.last().unwrap();
    assert_eq!(kind(last), "run_finished");
    assert_eq!(last["summary"]["cancelled"], false);
    assert_eq!(last["summary"]["failed"], 0);
    // Every stage phase was announced with its total up front and completed with all frames.
    let names = [
        "Decoding",
        "Processing faces",
        "Doing inference",
        "Restoring faces",
        "Encoding",
    ];
    for name in names {
        let started = events
            .iter()
            .find(|e| kind(e) == "phase_started" && e["name"] == name)
            .unwrap_or_else(|| panic!("no phase_started for {name}"));
        assert_eq!(started["total"], 30, "{name}");
        assert_eq!(started["unit"], "frames");
        let id = &started["id"];
        let finished = events
            .iter()
            .find(|e| kind(e) == "phase_finished" && &e["id"] == id)
            .unwrap_or_else(|| panic!("no phase_finished for {name}"));
        assert_eq!(finished["outcome"], "completed", "{name}");
        assert_eq!(finished["pos"], 30, "{name}");
    }
    assert!(
        events.iter().any(|e| kind(e) == "preview"),
        "infer sends previews"
    );
}

#[test]
fn cancellation_mid_run_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs {
        video: numbered_video(&dir.path().join("v.y4m"), 10, 64),
        // 10 minutes of audio: the looped output would be 15 000 frames.
        audio: tone_wav(&dir.path().join("a.wav"), 600.0),
    };
    let out = dir.path().join("out.y4m");
    let progress = Progress::builder()
        .tick(Duration::from_millis(2))
        .sink(|e: &Event| match e {
            Event::Progress { pos, .. } if *pos > 0 => Control::Cancel,
            _ => Control::Continue,
        })
        .start();
    let job = progress.phase("Lip sync", None, "frames");
    let err = pipeline::run(&config(Backend::Cpu), &inputs, &out, &job).unwrap_err();
    drop(job);
    let summary = progress.shutdown();
    assert!(matches!(err, PipelineError::Cancelled { .. }), "{err}");
    assert!(err.to_string().starts_with("cancelled during "), "{err}");
    assert!(summary.cancelled);
    assert_eq!(
        listing(dir.path()),
        ["a.wav", "v.y4m"],
        "no output or temporary file"
    );
}

#[test]
fn length_policies_loop_ping_pong_and_trim() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs {
        video: numbered_video(&dir.path().join("v.y4m"), 4, 16),
        audio: tone_wav(&dir.path().join("a.wav"), 0.4), // 10 frames at 25 fps
    };
    let red =
        |frames: &[frame::Frame]| -> Vec<u8> { frames.iter().map(|f| f.pixel(0, 0)[0]).collect() };
    for (policy, expected) in [
        (
            LengthPolicy::Loop,
            vec![0, 20, 40, 60, 60, 40, 20, 0, 0, 20],
        ),
        (LengthPolicy::Trim, vec![0, 20, 40, 60]),
    ] {
        let out = dir.path().join(format!("{policy:?}.y4m"));
        let cfg = PipelineConfig {
            options: RunOptions {
                length: policy,
                chunk: 3,
                ..config(Backend::Cpu).options
            },
            ..config(Backend::Cpu)
        };
        let (result, _) = run_with_json(&cfg, &inputs, &out);
        assert_eq!(result.unwrap().input_frames, 4);
        let (_, frames) = read_video(&out);
        let got = red(&frames);
        // 4:4:4 Y4M keeps flat colours within 2 LSB.
        assert_eq!(got.len(), expected.len(), "{policy:?}");
        for (g, e) in got.iter().zip(&expected) {
            assert!(g.abs_diff(*e) <= 2, "{policy:?}: {got:?} vs {expected:?}");
        }
    }
}

/// A bad input gives an error naming the file, and leaves no output.
fn check_bad_input(inputs: &Inputs, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.y4m");
    let (result, _) = run_with_json(&config(Backend::Cpu), inputs, &out);
    let err = result.expect_err("bad input must fail").to_string();
    assert!(
        err.contains(expected),
        "`{err}` should contain `{expected}`"
    );
    assert!(
        listing(dir.path()).is_empty(),
        "nothing written for `{expected}`"
    );
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let good_video = numbered_video(&p("good.y4m"), 3, 16);
    let good_audio = tone_wav(&p("good.wav"), 0.2);
    let with = |video: &Path, audio: &Path| Inputs {
        video: video.into(),
        audio: audio.into(),
    };
    check_bad_input(
        &with(&p("missing.y4m"), &good_audio),
        "missing.y4m: file not found",
    );
    check_bad_input(
        &with(&good_video, &p("missing.wav")),
        "missing.wav: file not found",
    );

    std::fs::write(
        p("corrupt.y4m"),
        b"YUV4MPEG2 W16 H16 F25:1 C444\nFRAME\n\x01\x02",
    )
    .unwrap();
    check_bad_input(
        &with(&p("corrupt.y4m"), &good_audio),
        "corrupt.y4m: corrupt Y4M: frame 0 is truncated",
    );

    std::fs::write(p("empty.y4m"), b"YUV4MPEG2 W16 H16 F25:1 C444\n").unwrap();
    check_bad_input(
        &with(&p("empty.y4m"), &good_audio),
        "empty.y4m: the video has no frames",
    );

    let wav = std::fs::read(&good_audio).unwrap();
    std::fs::write(p("cut.wav"), &wav[..wav.len() / 2]).unwrap();
    check_bad_input(
        &with(&good_video, &p("cut.wav")),
        "cut.wav: bad WAV: truncated",
    );

    std::fs::create_dir(p("pngs")).unwrap();
    for (name, size) in [("000", 16), ("001", 16), ("002", 12)] {
        let f = p(&format!("{name}.y4m"));
        numbered_video(&f, 1, size);
        let (_, frames) = read_video(&f);
        let mut w = media_io::VideoWriter::create(
            &p(&format!("tmp{name}")),
            &media_io::VideoInfo {
                width: size,
                height: size,
                fps: Rational::new(25, 1),
                frame_count: None,
            },
            &media_io::WriterOptions::default(),
        )
        .unwrap();
        w.write_frame(&frames[0]).unwrap();
        w.finish().unwrap();
        std::fs::rename(
            p(&format!("tmp{name}/frame_000000.png")),
            p(&format!("pngs/{name}.png")),
        )
        .unwrap();
    }
    check_bad_input(
        &with(&p("pngs"), &good_audio),
        "002.png: frame is 12x12, expected 16x16",
    );
}
