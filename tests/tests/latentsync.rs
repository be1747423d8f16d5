//! End-to-end with `--model latentsync:DIR` on stand-ins of LatentSync's ONNX export
//! (`onnx_models::latentsync::standins_script`). Under `cargo xtask test` a missing runtime or
//! Python package fails; in a bare `cargo test` the test prints why it skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use facesync_tests::{SharedBuf, listing, read_video};
use pipeline::sample::{SampleSpec, write_sample};
use pipeline::{Backend, Inputs, ModelSpec, PipelineConfig};
use progress_core::Progress;

fn standins() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("latentsync-standins");
    let made = (|| {
        onnx_models::runtime::find_library(None).map_err(|e| e.to_string())?;
        let python: PathBuf = std::env::var_os("FACESYNC_TEST_PYTHON")
            .map_or_else(|| "python3".into(), PathBuf::from);
        let out = Command::new(&python)
            .arg(onnx_models::latentsync::standins_script())
            .arg(&dir)
            .output()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        if !out.status.success() {
            return Err(format!(
                "standins.py failed (it needs onnx and numpy): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok::<_, String>(())
    })();
    match made {
        Ok(()) => Some(dir),
        Err(reason) if onnx_models::test_models::required() => {
            panic!("FACESYNC_REQUIRE_ORT=1 but {reason}")
        }
        Err(reason) => {
            #[allow(clippy::print_stderr)] // The test says why it is skipped.
            {
                eprintln!("skipped: {reason}");
            }
            None
        }
    }
}

#[test]
fn latentsync_runs_end_to_end_with_steps_and_keeps_every_frame() {
    let Some(models) = standins() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec {
        width: 160,
        height: 160,
        seconds: 0.8,
        ..SampleSpec::default()
    };
    let files = write_sample(dir.path(), &spec).unwrap();
    let inputs = Inputs {
        video: files.video,
        audio: files.audio,
    };
    let out = dir.path().join("out.y4m");
    let config = PipelineConfig {
        backend: Backend::Cpu,
        y4m_chroma: pipeline::media_io::Y4mChroma::C444,
        steps: 3,
        model: ModelSpec::LatentSync(models),
        ..PipelineConfig::default()
    };
    let buf = SharedBuf::default();
    let progress = Progress::builder()
        .sink(sinks::JsonLinesSink::new(buf.clone()))
        .start();
    let job = progress.phase("Lip sync", None, "frames");
    let result = pipeline::run(&config, &inputs, &out, &job);
    job.finish();
    drop(job);
    progress.shutdown();
    // 20 frames: a chunk of 16 and a padded, trimmed chunk of 4.
    assert_eq!(result.unwrap().frames, 20);
    let events: Vec<serde_json::Value> = buf
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
