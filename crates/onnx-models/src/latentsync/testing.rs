//! Test helpers: the Python interpreter that runs the reference computations and the stand-in
//! generator (`tests/latentsync/*.py`), and the checks against it.

use std::path::PathBuf;
use std::process::Command;

/// The interpreter ([`test_kit::python::interpreter`]: the test environment's). The tests need
/// numpy, onnx and librosa (`pip install numpy onnx librosa`).
pub(crate) fn python() -> PathBuf {
    test_kit::python::interpreter()
}

/// Loads ONNX Runtime into this test binary's copy of the crate: facesync's own discovery, else
/// the test environment's library (as `test_kit::models::load_runtime` does for the other
/// tests; this crate's unit tests have their own copy of the runtime's process state).
fn load_runtime() -> Result<(), String> {
    let explicit = match crate::runtime::find_library(None) {
        Ok(_) => None,
        Err(e) => Some(test_kit::python::onnx_runtime(&python()).map_err(|_| e.to_string())?),
    };
    crate::runtime::runtime(explicit.as_deref())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A script of `tests/latentsync`.
pub(crate) fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("latentsync")
        .join(name)
}

/// Runs `script` with `args`, returns its stdout; panics with its stderr on failure.
pub(crate) fn run_script(name: &str, args: &[&std::ffi::OsStr]) -> String {
    let py = python();
    let out = Command::new(&py)
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (set FACESYNC_TEST_PYTHON): {e}",
                py.display()
            )
        });
    assert!(
        out.status.success(),
        "{} {name} failed ({}); it needs numpy, onnx and librosa \
         (`pip install numpy onnx librosa`, FACESYNC_TEST_PYTHON names the interpreter):\n{}",
        py.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Why the tests that need Python packages or ONNX Runtime cannot run here, if so. Under
/// `cargo xtask test` (`FACESYNC_REQUIRE_ORT=1`) a missing piece fails the test; in a bare
/// `cargo test` the test prints why it is skipped and returns (the convention of
/// `tests/models.rs`).
fn missing(modules: &'static str, ort: bool) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Reasons = HashMap<(&'static str, bool), Option<String>>;
    static CACHE: OnceLock<Mutex<Reasons>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry((modules, ort))
        .or_insert_with(|| {
            if ort && let Err(e) = load_runtime() {
                return Some(e);
            }
            let py = python();
            match Command::new(&py)
                .args(["-c", &format!("import {modules}")])
                .output()
            {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(format!(
                    "{} cannot import {modules} (`pip install {}`): {}",
                    py.display(),
                    modules.replace(',', ""),
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                )),
                Err(e) => Some(format!(
                    "cannot run {} (FACESYNC_TEST_PYTHON): {e}",
                    py.display()
                )),
            }
        })
        .clone()
}

/// `true` when the test may run; otherwise prints why it is skipped (or panics when
/// `FACESYNC_REQUIRE_ORT=1`).
#[allow(clippy::print_stderr)] // A test says why it is skipped (libtest shows it).
pub(crate) fn have(modules: &'static str, ort: bool) -> bool {
    let Some(reason) = missing(modules, ort) else {
        return true;
    };
    if std::env::var_os("FACESYNC_REQUIRE_ORT").is_some_and(|v| v == "1") {
        panic!("FACESYNC_REQUIRE_ORT=1 but {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// Writes the stand-in graphs (`variant`: see `standins.py`) into a new temporary folder;
/// `None` (test skipped) without ONNX Runtime or Python's onnx and numpy.
pub(crate) fn standins(variant: &str) -> Option<tempfile::TempDir> {
    if !have("numpy, onnx", true) {
        return None;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    run_script(
        "standins.py",
        &[
            dir.path().as_os_str(),
            "--variant".as_ref(),
            variant.as_ref(),
        ],
    );
    Some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latentsync::{ddim, mel, noise, vae};
    use serde_json::{Value, json};

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    }

    fn reference(what: &str, args: &Value) -> Value {
        assert!(missing("numpy", false).is_none(), "checked by the caller");
        let out = run_script("reference.py", &[what.as_ref(), args.to_string().as_ref()]);
        serde_json::from_str(&out).expect("reference json")
    }

    fn close(got: f64, want: f64, rel: f64, what: &str) {
        assert!(
            (got - want).abs() <= rel * want.abs().max(1e-3),
            "{what}: {got} vs numpy {want}"
        );
    }

    #[test]
    fn ddim_schedule_and_one_guided_update_match_numpy() {
        if !have("numpy", false) {
            return;
        }
        for (steps, k, g) in [
            (20usize, 3usize, 1.5f32),
            (20, 19, 1.5),
            (7, 0, 1.0),
            (50, 25, 2.0),
        ] {
            let x = [0.3f32, -1.2, 2.0, 0.0];
            let u = [0.1f32, 0.4, -0.7, 1.0];
            let c = [-0.2f32, 0.9, 0.3, -1.0];
            let want = reference(
                "ddim",
                &json!({"steps": steps, "guidance": g, "step": k, "x": x, "u": u, "c": c}),
            );
            let d = ddim::Ddim::new(steps);
            let t: Vec<i64> = want["timesteps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            assert_eq!(d.timesteps(), t, "{steps} steps");
            let ac = ddim::alphas_cumprod();
            for (i, (at, ap)) in floats(&want["alpha_t"])
                .into_iter()
                .zip(floats(&want["alpha_prev"]))
                .enumerate()
            {
                close(ac[t[i] as usize], at, 1e-4, "alpha_cumprod[t]");
                let prev = t[i] - (1000 / steps) as i64;
                let ours = if prev >= 0 { ac[prev as usize] } else { ac[0] };
                close(ours, ap, 1e-4, "alpha_cumprod[prev]");
            }
            let mut lat = x;
            let mut x0 = [0.0f32; 4];
            let uncond = (g != 1.0).then_some(&u[..]);
            ddim::guided_step(&d.steps()[k], g, &mut lat, &c, uncond, Some(&mut x0));
            for (i, (p, w)) in lat.iter().zip(floats(&want["prev"])).enumerate() {
                close(
                    f64::from(*p),
                    w,
                    1e-4,
                    &format!("{steps} steps, step {k}, prev[{i}]"),
                );
            }
            for (i, (p, w)) in x0.iter().zip(floats(&want["x0"])).enumerate() {
                close(
                    f64::from(*p),
                    w,
                    1e-4,
                    &format!("{steps} steps, step {k}, x0[{i}]"),
                );
            }
        }
    }

    #[test]
    fn vae_sampling_matches_numpy() {
        if !have("numpy", false) {
            return;
        }
        let (frames, hw) = (2usize, 3usize);
        let moments: Vec<f32> = (0..frames * 8 * hw)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 4.0)
            .collect();
        let mut eps = vec![0.0f32; frames * 4 * hw];
        noise::Noise::new(1, 2).fill(&mut eps);
        let want = reference(
            "vae",
            &json!({"moments": moments, "eps": eps, "frames": frames, "hw": hw}),
        );
        let mut got = vec![0.0f32; frames * 4 * hw];
        vae::sample_latents(&moments, frames, hw, &eps, &mut got);
        for (i, (g, w)) in got.iter().zip(floats(&want["latents"])).enumerate() {
            close(f64::from(*g), w, 1e-5, &format!("latent {i}"));
        }
    }

    #[test]
    fn whisper_mel_matches_librosa() {
        if !have("numpy, librosa", false) {
            return;
        }
        // 3.3 s of a chirp plus noise at 16 kHz, streamed in odd blocks.
        let n = 52_800 + 77;
        let mut state = 12345u32;
        let audio: Vec<f32> = (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let t = i as f32 / 16_000.0;
                0.4 * (2.0 * std::f32::consts::PI * (200.0 + 900.0 * t) * t).sin()
                    + (state as f32 / u32::MAX as f32 - 0.5) * 0.05
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("in.f32"), dir.path().join("out.f32"));
        let bytes: Vec<u8> = audio.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&src, bytes).unwrap();
        run_script(
            "reference.py",
            &["mel".as_ref(), src.as_os_str(), dst.as_os_str()],
        );
        let want: Vec<f32> = std::fs::read(&dst)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut stream = mel::MelStream::new();
        for block in audio.chunks(1237) {
            stream.push(block);
        }
        let m = stream.finish();
        let cols = m.n_columns();
        assert_eq!(
            want.len(),
            mel::N_MELS * cols,
            "librosa gives {} values",
            want.len()
        );
        let mut seg = vec![0.0f32; mel::N_MELS * mel::SEGMENT_COLUMNS];
        m.segment(0, &mut seg);
        let mut worst = 0.0f32;
        for b in 0..mel::N_MELS {
            for c in 0..cols {
                let d = (seg[b * mel::SEGMENT_COLUMNS + c] - want[b * cols + c]).abs();
                worst = worst.max(d);
            }
        }
        // f32 FFT against numpy's: within 1e-3 of the normalised log10 (0.004 dB).
        assert!(worst < 1e-3, "largest difference {worst}");
    }
}
