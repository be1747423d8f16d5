//! End-to-end with learned models (Wav2Lip-96, EDTalk-256 through ONNX Runtime), on models
//! generated at test time (`test_kit::models`). Under `cargo xtask test` a missing
//! runtime fails; in a bare `cargo test` these tests print why they skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use facesync_tests::{listing, read_video, run_with_json, sample_inputs};
use pipeline::{Backend, ModelSpec, PipelineConfig, PipelineError, RunOptions};
use progress_core::{Control, Event, Progress};

fn models() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-models");
    test_kit::or_skip!(test_kit::models::generate(&dir)).map(|m| m.dir)
}

fn config(model: ModelSpec) -> PipelineConfig {
    PipelineConfig {
        options: RunOptions {
            backend: Backend::Cpu,
            chunk: 8,
            model,
            ..RunOptions::default()
        },
        y4m_chroma: pipeline::media_io::Y4mChroma::C444,
        ..PipelineConfig::default()
    }
}

fn check_model_run(model: ModelSpec, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = sample_inputs(dir.path(), 0.8);
    let out = dir.path().join("out.y4m");
    let (result, events) = run_with_json(&config(model), &inputs, &out);
    assert_eq!(result.unwrap().frames, 20);
    let kind = |e: &serde_json::Value| e["type"].as_str().unwrap_or("").to_string();
    // One-shot model: "Doing inference" counts frames, no "steps" phase.
    assert!(
        !events
            .iter()
            .any(|e| kind(e) == "phase_started" && e["name"] == "steps"),
        "{name}: a steps phase"
    );
    let message = events
        .iter()
        .find(|e| {
            kind(e) == "message" && e["text"].as_str().unwrap_or("").contains("lip-sync model")
        })
        .unwrap_or_else(|| panic!("{name}: no message names the model"));
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains(name) && text.contains("runs on CPU"),
        "{text}"
    );
    assert!(
        events.iter().any(|e| kind(e) == "preview"),
        "{name}: previews"
    );
    // Every frame has a face in the sample; the model changed pixels of each one, and rows
    // far from the face are untouched.
    let (_, input) = read_video(&inputs.video);
    let (_, output) = read_video(&out);
    for (i, (a, b)) in input.iter().zip(&output).enumerate() {
        let band = |y0: u32, y1: u32| {
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0..y1 {
                for x in 0..a.width() {
                    let (p, q) = (a.pixel(x, y), b.pixel(x, y));
                    sum += (0..3).map(|c| u64::from(p[c].abs_diff(q[c]))).sum::<u64>();
                    n += 3;
                }
            }
            sum as f64 / n as f64
        };
        // The sample's face spans rows ≈ 20–60: the mouth half changed (random weights:
        // levels, not rounding), rows far from the face kept within restore's resampling.
        // Wav2Lip is pasted inside the lower face; EDTalk regenerates the whole `ffhq_512`
        // crop (about twice the face's size around it) and, as in FaceFusion, all of it is
        // pasted with the box mask: far from the face means below that crop there.
        let far = if name.starts_with("edtalk") {
            band(110, 160)
        } else {
            band(60, 160).max(band(0, 15))
        };
        let (upper, lower) = (band(20, 40), band(40, 60));
        assert!(
            lower > 1.0,
            "{name}: frame {i}: lower face mean change {lower}"
        );
        assert!(far < 0.1, "{name}: frame {i}: far from the face {far}");
        if name.starts_with("wav2lip") {
            assert!(
                upper < lower / 5.0,
                "{name}: frame {i}: upper face {upper} vs {lower}"
            );
        }
    }
    assert_eq!(listing(dir.path()), ["out.y4m", "sample.wav", "sample.y4m"]);
}

#[test]
fn wav2lip_runs_end_to_end() {
    let Some(m) = models() else { return };
    check_model_run(
        ModelSpec::Wav2Lip(m.join("wav2lip_96.onnx")),
        "wav2lip_96.onnx",
    );
}

#[test]
fn edtalk_runs_end_to_end() {
    let Some(m) = models() else { return };
    check_model_run(
        ModelSpec::EdTalk(m.join("edtalk_256.onnx")),
        "edtalk_256.onnx",
    );
}

#[test]
fn cancel_during_model_inference_leaves_no_output() {
    let Some(m) = models() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inputs = sample_inputs(dir.path(), 2.0);
    let out = dir.path().join("out.y4m");
    let mut inference = None;
    let progress = Progress::builder()
        .tick(Duration::from_millis(2))
        .sink(move |e: &Event| match e {
            Event::PhaseStarted { id, name, .. } if name == "Doing inference" => {
                inference = Some(*id);
                Control::Continue
            }
            Event::Progress { id, pos, .. } if Some(*id) == inference && *pos >= 3 => {
                Control::Cancel
            }
            _ => Control::Continue,
        })
        .start();
    let job = progress.phase("Lip sync", None, "frames");
    let config = config(ModelSpec::Wav2Lip(m.join("wav2lip_96.onnx")));
    let err = pipeline::run(&config, &inputs, &out, &job).unwrap_err();
    drop(job);
    progress.shutdown();
    assert!(matches!(err, PipelineError::Cancelled { .. }), "{err}");
    assert_eq!(listing(dir.path()), ["sample.wav", "sample.y4m"]);
}

#[test]
fn a_bad_model_is_one_clear_error_and_no_output() {
    let Some(m) = models() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inputs = sample_inputs(dir.path(), 0.2);
    let out = dir.path().join("out.y4m");
    for (spec, words) in [
        (
            ModelSpec::Wav2Lip(m.join("missing.onnx")),
            vec!["missing.onnx", "No such file"],
        ),
        (
            ModelSpec::Wav2Lip(m.join("not_onnx.onnx")),
            vec!["not_onnx.onnx", "not a loadable ONNX model"],
        ),
        (
            ModelSpec::Wav2Lip(m.join("bad_name.onnx")),
            vec!["bad_name.onnx", "`source`: no such input"],
        ),
        (
            ModelSpec::EdTalk(m.join("bad_size.onnx")),
            vec!["bad_size.onnx", "`target`"],
        ),
    ] {
        let (result, _) = run_with_json(&config(spec.clone()), &inputs, &out);
        let err = result.unwrap_err();
        assert!(matches!(err, PipelineError::Model(_)), "{spec}: {err}");
        for w in words {
            assert!(err.to_string().contains(w), "{spec}: `{w}` not in {err}");
        }
        assert_eq!(listing(dir.path()), ["sample.wav", "sample.y4m"], "{spec}");
    }
}

/// The model's error stays typed up to the pipeline's: a caller can tell a missing or
/// unloadable ONNX Runtime (answered with "install onnxruntime") from a bad model file,
/// without reading the message.
#[test]
fn a_runtime_that_cannot_load_is_a_typed_onnx_error() {
    let Some(m) = models() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inputs = sample_inputs(dir.path(), 0.2);
    let out = dir.path().join("out.y4m");
    let missing = dir.path().join("nowhere").join("libonnxruntime.so");
    let bad_runtime = PipelineConfig {
        onnx_runtime: Some(missing.clone()),
        ..config(ModelSpec::Wav2Lip(m.join("wav2lip_96.onnx")))
    };
    let (result, _) = run_with_json(&bad_runtime, &inputs, &out);
    match result.unwrap_err() {
        PipelineError::Model(e) => match e.onnx() {
            Some(onnx_models::OnnxError::RuntimeLoad { library, .. }) => {
                assert_eq!(library, &missing)
            }
            other => panic!("expected a RuntimeLoad error under {e}, got {other:?}"),
        },
        other => panic!("expected PipelineError::Model, got {other}"),
    }
    // A bad file under a working runtime is not an ONNX Runtime problem of that kind.
    let (result, _) = run_with_json(
        &config(ModelSpec::Wav2Lip(m.join("not_onnx.onnx"))),
        &inputs,
        &out,
    );
    match result.unwrap_err() {
        PipelineError::Model(e) => assert!(
            !matches!(
                e.onnx(),
                Some(
                    onnx_models::OnnxError::RuntimeMissing { .. }
                        | onnx_models::OnnxError::RuntimeLoad { .. }
                )
            ),
            "{e}"
        ),
        other => panic!("expected PipelineError::Model, got {other}"),
    }
}
