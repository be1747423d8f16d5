//! End-to-end with `--model latentsync:DIR` on stand-ins of LatentSync's ONNX export
//! (`test_kit::models::latentsync_standins`). Under `cargo xtask test` a missing runtime or
//! Python package fails; in a bare `cargo test` the test prints why it skips.

use std::path::{Path, PathBuf};

use facesync_tests::{listing, read_video, run_with_json, sample_inputs};
use pipeline::{Backend, ModelSpec, PipelineConfig, RunOptions};

fn standins() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("latentsync-standins");
    test_kit::or_skip!(test_kit::models::latentsync_standins(&dir)).map(|()| dir)
}

#[test]
fn latentsync_runs_end_to_end_with_steps_and_keeps_every_frame() {
    let Some(models) = standins() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inputs = sample_inputs(dir.path(), 0.8);
    let out = dir.path().join("out.y4m");
    let config = PipelineConfig {
        options: RunOptions {
            backend: Backend::Cpu,
            steps: 3,
            model: ModelSpec::LatentSync(models),
            ..RunOptions::default()
        },
        y4m_chroma: pipeline::media_io::Y4mChroma::C444,
        ..PipelineConfig::default()
    };
    let (result, events) = run_with_json(&config, &inputs, &out);
    // 20 frames: a chunk of 16 and a padded, trimmed chunk of 4.
    assert_eq!(result.unwrap().frames, 20);
    let kind = |e: &serde_json::Value| e["type"].as_str().unwrap_or("").to_string();
    let steps: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| kind(e) == "phase_started" && e["name"] == "steps")
        .collect();
    assert_eq!(steps.len(), 2, "one steps phase per chunk");
    assert!(steps.iter().all(|e| e["total"] == 3), "{steps:?}");
    assert!(
        events.iter().any(|e| kind(e) == "message"
            && e["text"]
                .as_str()
                .unwrap_or("")
                .contains("(latentsync, 3 DDIM steps")),
        "no message names the model"
    );
    let (_, input) = read_video(&inputs.video);
    let (_, output) = read_video(&out);
    assert_eq!(output.len(), 20);
    let changed = input
        .iter()
        .zip(&output)
        .filter(|(a, b)| a.data() != b.data())
        .count();
    assert_eq!(changed, 20, "every frame's lower face is regenerated");
    assert_eq!(listing(dir.path()), ["out.y4m", "sample.wav", "sample.y4m"]);
}
