//! The `pipeline` command as a user runs it: exit codes, error text on stderr, Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `pipeline` with `args` from `dir` and checks it fails with `expected` on stderr.
fn check_failure(dir: &Path, args: &[&str], expected: &str) {
    let out = xtask()
        .arg("pipeline")
        .args(["--progress", "none"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} must fail: {stderr}");
    assert!(
        stderr.contains(expected),
        "{args:?}: stderr should contain `{expected}`:\n{stderr}"
    );
}

/// 16-bit mono WAV at 16 kHz holding `samples` zero samples.
fn wav(samples: u32) -> Vec<u8> {
    let data = samples * 2;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(w.len() + data as usize, 0);
    w
}

#[test]
fn bad_inputs_exit_non_zero_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut y4m = b"YUV4MPEG2 W16 H16 F25:1 C444\nFRAME\n".to_vec();
    y4m.resize(y4m.len() + 16 * 16 * 3, 128);
    std::fs::write(d.join("good.y4m"), &y4m).unwrap();
    std::fs::write(d.join("corrupt.y4m"), &y4m[..y4m.len() - 100]).unwrap();
    std::fs::write(d.join("empty.y4m"), b"YUV4MPEG2 W16 H16 F25:1 C444\n").unwrap();
    let good = wav(3200);
    std::fs::write(d.join("good.wav"), &good).unwrap();
    std::fs::write(d.join("cut.wav"), &good[..good.len() / 2]).unwrap();

    // Relative paths are taken from the directory the command runs in.
    for (video, audio, expected) in [
        ("missing.y4m", "good.wav", "missing.y4m: file not found"),
        ("good.y4m", "missing.wav", "missing.wav: file not found"),
        (
            "corrupt.y4m",
            "good.wav",
            "corrupt.y4m: corrupt Y4M: frame 0 is truncated",
        ),
        (
            "empty.y4m",
            "good.wav",
            "empty.y4m: the video has no frames",
        ),
        ("good.y4m", "cut.wav", "cut.wav: bad WAV: truncated"),
    ] {
        check_failure(
            d,
            &["--video", video, "--audio", audio, "--out", "out.y4m"],
            expected,
        );
    }
    assert_eq!(
        files_in(d),
        [
            "corrupt.y4m",
            "cut.wav",
            "empty.y4m",
            "good.wav",
            "good.y4m"
        ],
        "no output and no temporary file is left behind"
    );

    for (args, expected) in [
        (
            &["--resolution", "300"][..],
            "resolution 300 is not supported",
        ),
        (
            &["--no-face", "skip"],
            "expected pass, error or interpolate",
        ),
        (&["--video", "good.y4m"], "give both --video and --audio"),
        (&["--frobnicate"], "unknown option `--frobnicate`"),
    ] {
        check_failure(d, args, expected);
    }
}

#[test]
fn help_lists_the_options_and_exits_zero() {
    let out = xtask().args(["pipeline", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--video",
        "--audio",
        "--out",
        "--progress",
        "--length",
        "--no-face",
    ] {
        assert!(text.contains(option), "--help lacks {option}");
    }
}

/// Ctrl-C (SIGINT) during the run: exit code 130, the phase named on stderr, the run's last
/// JSON event still written, and no output or temporary file left.
#[test]
fn ctrl_c_cancels_with_exit_code_130_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let sample_dir = dir.path().join("sample");
    let mut child = xtask()
        .args(["pipeline", "--progress", "json", "--backend", "cpu"])
        .args(["--sample-size", "128", "--sample-seconds", "30"])
        .arg("--sample-dir")
        .arg(&sample_dir)
        .arg("--out")
        .arg(dir.path().join("out.y4m"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the faces stage has made progress, then interrupt.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut faces_id = None;
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the run ended before any face progress"
        );
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["type"] == "phase_started" && event["name"] == "Processing faces" {
            faces_id = Some(event["id"].clone());
        }
        if event["type"] == "progress" && Some(&event["id"]) == faces_id.as_ref() {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelled during"), "{stderr}");
    let last: serde_json::Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["type"], "run_finished", "{last}");
    assert_eq!(files_in(dir.path()), ["sample"], "no output file is left");
}

/// The generated learned models, or `None` (skipped, with the reason printed) when the ONNX
/// Runtime library or the Python `onnx` package is missing outside `cargo xtask test`.
#[allow(clippy::print_stderr)] // a test without the runtime says why it skips
fn learned_models() -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-models");
    match onnx_models::test_models::generate(&dir) {
        Ok(m) => Some(m.dir),
        Err(reason) if onnx_models::test_models::required() => {
            panic!("FACESYNC_REQUIRE_ORT=1 but {reason}")
        }
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

#[test]
fn learned_models_run_from_the_command_line_and_bad_ones_exit_1() {
    let Some(models) = learned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = [
        "--sample-seconds",
        "0.4",
        "--sample-size",
        "96",
        "--backend",
        "cpu",
    ];
    for (model, out) in [
        (
            format!("wav2lip:{}", models.join("wav2lip_96.onnx").display()),
            "w.y4m",
        ),
        (
            format!("edtalk:{}", models.join("edtalk_256.onnx").display()),
            "e.y4m",
        ),
    ] {
        let sample_dir = d.join(out.trim_end_matches(".y4m"));
        let status = xtask()
            .args(["pipeline", "--progress", "none", "--model", &model])
            .args(["--model-weight", "0.7"])
            .args(sample)
            .arg("--sample-dir")
            .arg(&sample_dir)
            .status()
            .unwrap();
        assert!(status.success(), "{model}");
        assert!(
            files_in(&sample_dir)
                .iter()
                .any(|f| f.starts_with("lipsync.")),
            "{model}"
        );
    }
    for (model, expected) in [
        (
            "wav2lip:missing.onnx".to_string(),
            "missing.onnx: No such file",
        ),
        (
            format!("wav2lip:{}", models.join("not_onnx.onnx").display()),
            "not_onnx.onnx is not a loadable ONNX model",
        ),
        (
            format!("edtalk:{}", models.join("wav2lip_96.onnx").display()),
            "tensor `target`: axis 1 is 6",
        ),
        (
            "sadtalker:x.onnx".to_string(),
            "unknown model `sadtalker:x.onnx`",
        ),
    ] {
        let sample_dir = d.join("bad");
        let args = [
            "--model",
            &model,
            "--sample-dir",
            sample_dir.to_str().unwrap(),
        ];
        check_failure(d, &[&sample[..], &args[..]].concat(), expected);
        if sample_dir.exists() {
            assert!(
                !files_in(&sample_dir)
                    .iter()
                    .any(|f| f.starts_with("lipsync")),
                "{model}: no output"
            );
        }
    }
}
