//! `facesync` as a user runs it: help, exit codes, error text on stderr, Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use facesync_tests::{listing, output_ok};

/// The command, with the tests' ONNX Runtime ([`test_kit::models::load_runtime`]) when there
/// is one, so that its learned models find it as this process does.
fn facesync() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_facesync"));
    if let Ok(library) = test_kit::models::load_runtime() {
        command.env("ORT_DYLIB_PATH", library);
    }
    command
}

/// Runs `facesync run` with `args` from `dir` and checks it fails with exit code `code` and
/// `expected` on stderr.
fn check_failure(dir: &Path, args: &[&str], code: i32, expected: &str) {
    let out = facesync()
        .arg("run")
        .args(["--progress", "none"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?} must fail: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
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
            1,
            expected,
        );
    }
    assert_eq!(
        listing(d),
        [
            "corrupt.y4m",
            "cut.wav",
            "empty.y4m",
            "good.wav",
            "good.y4m"
        ],
        "no output and no temporary file is left behind"
    );

    // Command-line mistakes, limits included (the run options' one parser): exit code 2, the
    // option named.
    for (args, expected) in [
        (
            &["--resolution", "300"][..],
            "invalid value '300' for '--resolution <256|512>': resolution 300 is not supported (256 or 512)",
        ),
        (
            &["--steps", "101"][..],
            "invalid value '101' for '--steps <N>': steps 101 is out of range (1 to 100)",
        ),
        (
            &["--model-weight", "strong"][..],
            "invalid value 'strong' for '--model-weight <W>': model_weight: \"strong\" is not a number",
        ),
        (
            // A negative number is the value, not a flag.
            &["--silence-threshold", "-120"][..],
            "invalid value '-120' for '--silence-threshold <DBFS|off>': silence threshold -120 is out of range (-100 to 0, or off)",
        ),
        (
            &["--no-face", "skip"][..],
            "unknown no-face policy \"skip\": expected one of pass, error, interpolate",
        ),
        (
            &["--backend", "tpu"],
            "unknown backend \"tpu\": expected one of auto, gpu, cpu",
        ),
        (
            &["--progress", "bars"],
            "invalid value 'bars' for '--progress",
        ),
        (&["--video", "good.y4m"], "--audio <IN>"),
        (&["--frobnicate"], "unexpected argument '--frobnicate'"),
        (&["--steps"], "a value is required for '--steps <N>'"),
        (&["--sample-seconds", "0"], "expected at least 0.04"),
        (&["--sample-size", "8"], "--sample-size"),
        (
            &[
                "--video",
                "good.y4m",
                "--audio",
                "good.wav",
                "--out",
                "o.y4m",
                "--sample-seconds",
                "2",
            ],
            "'--video <IN>' cannot be used with '--sample-seconds <S>'",
        ),
    ] {
        check_failure(d, args, 2, expected);
    }
    assert_eq!(listing(d).len(), 5, "still no output: {:?}", listing(d));
}

/// Options belong to their subcommand: one given to another is an error naming it.
#[test]
fn unknown_or_misplaced_options_are_errors_naming_them() {
    for (args, expected) in [
        (
            &["worker", "--video", "x"][..],
            "unexpected argument '--video'",
        ),
        (
            &["cancel", "--steps", "3", "job"],
            "unexpected argument '--steps'",
        ),
        (&["sample", "--out", "x"], "unexpected argument '--out'"),
        (&["watch"], "<JOB>"),
        (&["submit", "--video", "v.y4m"], "--audio <IN>"),
        (&["lipsync"], "unrecognized subcommand 'lipsync'"),
        (&["run", "--worker"], "unexpected argument '--worker'"),
    ] {
        let out = facesync().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: `{expected}` not in:\n{stderr}"
        );
        assert!(
            !stderr.contains('\x1b'),
            "{args:?}: colour codes off a terminal"
        );
    }
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for (command, options) in [
        (
            "run",
            &[
                "--video",
                "--audio",
                "--out",
                "--progress",
                "--length",
                "--no-face",
                "--backend",
            ][..],
        ),
        ("sample", &["--dir", "--seconds", "--size"]),
        (
            "worker",
            &[
                "--nats",
                "--name",
                "--ack-wait",
                "--max-attempts",
                "--max-jobs",
            ],
        ),
        (
            "submit",
            &["--nats", "--video", "--audio", "--out", "--steps", "--id"],
        ),
        ("watch", &["--nats", "--timeout", "<JOB>"]),
        ("cancel", &["--nats", "<JOB>"]),
    ] {
        let out = facesync().args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{command} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Examples:"),
            "{command} --help has no examples:\n{text}"
        );
        assert!(
            text.contains(&format!("facesync {command}")),
            "{command} --help has no example of itself:\n{text}"
        );
        for option in options {
            assert!(
                text.contains(option),
                "{command} --help lacks {option}:\n{text}"
            );
        }
        assert!(
            !text.contains('\x1b'),
            "colour codes in help off a terminal"
        );
    }
    let out = facesync().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["run", "sample", "worker", "submit", "watch", "cancel"] {
        assert!(text.contains(command), "--help lacks {command}:\n{text}");
    }
}

/// `facesync sample` writes the two files it prints, and nothing else.
#[test]
fn sample_writes_the_files_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let out = output_ok(
        facesync()
            .args(["sample", "--dir", "s", "--seconds", "0.2", "--size", "32"])
            .current_dir(dir.path()),
    );
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        printed,
        [
            dir_path.join("s/sample.y4m").display().to_string(),
            dir_path.join("s/sample.wav").display().to_string()
        ]
    );
    assert_eq!(listing(&dir.path().join("s")), ["sample.wav", "sample.y4m"]);
}

/// Ctrl-C (SIGINT) during the run: exit code 130, the phase named on stderr, the run's last
/// JSON event still written, and no output or temporary file left.
#[test]
fn ctrl_c_cancels_with_exit_code_130_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let sample_dir = dir.path().join("sample");
    let mut child = facesync()
        .args(["run", "--progress", "json", "--backend", "cpu"])
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
    assert_eq!(listing(dir.path()), ["sample"], "no output file is left");
}

/// `facesync run` on a small built-in sample, as a user runs it off a terminal: the output
/// appears where the last line says, and the console's progress is plain text.
#[test]
fn run_on_the_sample_writes_the_output_it_names_with_plain_progress() {
    let dir = tempfile::tempdir().unwrap();
    let out = facesync()
        .args([
            "run",
            "--backend",
            "cpu",
            "--steps",
            "2",
            "--sample-dir",
            "s",
        ])
        .args([
            "--sample-size",
            "96",
            "--sample-seconds",
            "0.6",
            "--out",
            "s/out.y4m",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "colour codes off a terminal:\n{stderr}"
    );
    assert!(stderr.contains("Processing faces"), "{stderr}");
    let output = std::fs::canonicalize(dir.path()).unwrap().join("s/out.y4m");
    let last = stderr.lines().last().unwrap();
    assert_eq!(
        last.split(" (").next().unwrap(),
        format!("output: {}", output.display()),
        "{stderr}"
    );
    assert!(last.contains("(15 frames at 25/1 fps"), "{last}");
    assert_eq!(
        listing(&dir.path().join("s")),
        ["out.y4m", "sample.wav", "sample.y4m"]
    );
}

/// `--landmarks-out` writes one JSON line per frame with the face the run used (FaceFusion's
/// 5 points, the 68 and the 468 mesh points inside the face box); a run that fails leaves no
/// landmarks file; `--fps` sets a PNG folder's rate and a bad rate is a usage error.
#[test]
fn landmarks_out_writes_every_frames_face_and_nothing_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = facesync()
        .args([
            "run",
            "--backend",
            "cpu",
            "--steps",
            "1",
            "--sample-dir",
            "s",
        ])
        .args(["--sample-size", "128", "--sample-seconds", "0.4"])
        .args(["--out", "s/out.y4m", "--landmarks-out", "s/faces.jsonl"])
        .args(["--progress", "none"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("s/faces.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10, "one line per frame");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["frame"], i as u64);
        let face = &line["faces"][0];
        let b: Vec<f64> = face["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (key, n) in [("points5", 5), ("points68", 68), ("mesh", 468)] {
            let pts = face[key].as_array().unwrap();
            assert_eq!(pts.len(), n, "frame {i}: {key}");
            if key == "points5" {
                for p in pts {
                    let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                    assert!(
                        x > b[0] && x < b[0] + b[2] && y > b[1] && y < b[1] + b[3],
                        "frame {i}: {key} point ({x}, {y}) outside the box {b:?}"
                    );
                }
            }
        }
    }
    // A run that fails after it started writing (no face in a frame under --no-face error)
    // leaves no landmarks file, not even its temporary one.
    let mut y4m = b"YUV4MPEG2 W64 H64 F25:1 C444\n".to_vec();
    for _ in 0..3 {
        y4m.extend_from_slice(b"FRAME\n");
        y4m.extend(std::iter::repeat_n(16u8, 64 * 64));
        y4m.extend(std::iter::repeat_n(128u8, 2 * 64 * 64));
    }
    std::fs::write(dir.path().join("s/blank.y4m"), y4m).unwrap();
    check_failure(
        dir.path(),
        &[
            "--video",
            "s/blank.y4m",
            "--audio",
            "s/sample.wav",
            "--out",
            "s/out2.y4m",
            "--no-face",
            "error",
            "--backend",
            "cpu",
            "--landmarks-out",
            "s/failed.jsonl",
        ],
        1,
        "frame 0",
    );
    assert!(!dir.path().join("s/failed.jsonl").exists());
    assert!(
        listing(&dir.path().join("s"))
            .iter()
            .all(|f| !f.contains("failed") && !f.contains("out2")),
        "{:?}",
        listing(&dir.path().join("s"))
    );
    check_failure(
        dir.path(),
        &[
            "--video",
            "s",
            "--audio",
            "s/sample.wav",
            "--out",
            "o.y4m",
            "--fps",
            "0",
        ],
        2,
        "frame rate \"0\"",
    );
}

/// The generated learned models, or `None` (skipped, with the reason printed) when the ONNX
/// Runtime library or the Python `onnx` package is missing outside `cargo xtask test`.
fn learned_models() -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-models");
    test_kit::or_skip!(test_kit::models::generate(&dir)).map(|m| m.dir)
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
            "w",
        ),
        (
            format!("edtalk:{}", models.join("edtalk_256.onnx").display()),
            "e",
        ),
    ] {
        let sample_dir = d.join(out);
        let status = facesync()
            .args(["run", "--progress", "none", "--model", &model])
            .args(["--model-weight", "0.7"])
            .args(sample)
            .arg("--sample-dir")
            .arg(&sample_dir)
            .status()
            .unwrap();
        assert!(status.success(), "{model}");
        assert!(
            listing(&sample_dir)
                .iter()
                .any(|f| f.starts_with("lipsync.")),
            "{model}"
        );
    }
    for (model, code, expected) in [
        (
            "wav2lip:missing.onnx".to_string(),
            1,
            "missing.onnx: No such file",
        ),
        (
            format!("wav2lip:{}", models.join("not_onnx.onnx").display()),
            1,
            "not_onnx.onnx is not a loadable ONNX model",
        ),
        (
            format!("edtalk:{}", models.join("wav2lip_96.onnx").display()),
            1,
            "tensor `target`: axis 1 is 6",
        ),
        (
            "sadtalker:x.onnx".to_string(),
            2,
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
        check_failure(d, &[&sample[..], &args[..]].concat(), code, expected);
        if sample_dir.exists() {
            assert!(
                !listing(&sample_dir)
                    .iter()
                    .any(|f| f.starts_with("lipsync")),
                "{model}: no output"
            );
        }
    }
}

/// `--model latentsync:DIR` end to end: the stand-in graphs with the export's four contracts
/// (`crates/onnx-models/tests/latentsync/standins.py`), the sample at 256×256, LatentSync's
/// alignment on the face mesh, 2 DDIM steps; then a folder missing a file is one clear error.
#[test]
fn a_latentsync_folder_runs_from_the_command_line() {
    if learned_models().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("latentsync");
    test_kit::models::latentsync_standins(&export).unwrap();
    let sample_dir = dir.path().join("run");
    let out = output_ok(
        facesync()
            .args(["run", "--progress", "json", "--backend", "cpu"])
            .arg(format!("--model=latentsync:{}", export.display()))
            .args(["--resolution", "256", "--chunk", "16", "--steps", "2"])
            .args(["--sample-seconds", "0.8", "--sample-size", "256"])
            .arg("--sample-dir")
            .arg(&sample_dir),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing(&sample_dir)
            .iter()
            .any(|f| f.starts_with("lipsync.")),
        "no output"
    );
    // One UNet call per step: the "steps" child phase counts them.
    assert!(stdout.contains("\"steps\""), "{stdout:.2000}");

    std::fs::remove_file(export.join("vae_decoder.onnx")).unwrap();
    let bad_dir = dir.path().join("bad");
    let args = [
        "--sample-seconds",
        "0.4",
        "--sample-size",
        "256",
        "--resolution",
        "256",
        "--backend",
        "cpu",
        "--sample-dir",
        bad_dir.to_str().unwrap(),
    ];
    let model = format!("--model=latentsync:{}", export.display());
    check_failure(
        dir.path(),
        &[&args[..], &[model.as_str()][..]].concat(),
        1,
        "vae_decoder.onnx",
    );
}
