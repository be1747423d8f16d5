//! `cargo xtask bench mesh [rounds]`: FaceMesh (the committed `face_landmark.onnx`, 192×192)
//! on face-net's own CPU executor against ONNX Runtime's CPU provider (the test venv's
//! `onnxruntime`, through `facesync-onnx-models`), one thread each (the face stage runs one
//! network per thread), on the same input: the sample photo through `facemesh::preprocess`.
//! Rounds alternate (ours, ONNX Runtime, ours, …; default 7 rounds of 50 calls each after a
//! warm-up); the medians of the per-round mean call times are printed, with the largest
//! landmark difference between the two (input pixels) as a check that both ran the same
//! network. The ONNX Runtime side goes through `OnnxSession::run_f32`, as facesync's models
//! do, so its time includes handing the 0.4 MB input over as a new tensor. This is the
//! measurement behind running the mesh on our executor.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use face_net::blazeface::Letterbox;
use face_net::facemesh::{self, CpuFaceMesh, INPUT_LEN, INPUT_SIDE};
use onnx_models::{ProviderRequest, SessionOptions};

const CALLS: usize = 50;

pub(crate) fn run(args: &[String]) -> Result<()> {
    let rounds = match args {
        [] => 7,
        [n] => n
            .parse()
            .with_context(|| format!("rounds: `{n}` is not a count"))?,
        _ => bail!("usage: cargo xtask bench mesh [rounds]"),
    };
    let python = test_kit::python::environment().map_err(anyhow::Error::msg)?;
    let library = test_kit::python::onnx_runtime(&python).map_err(anyhow::Error::msg)?;
    let photo = crate::face::astronaut()?;
    let mut nhwc = vec![0.0f32; INPUT_LEN];
    facemesh::preprocess(
        &photo,
        &Letterbox::whole(photo.width(), photo.height()),
        &mut nhwc,
    );
    let side = INPUT_SIDE;
    let mut nchw = vec![0.0f32; INPUT_LEN];
    for (i, px) in nhwc.chunks_exact(3).enumerate() {
        for (c, v) in px.iter().enumerate() {
            nchw[c * side * side + i] = *v;
        }
    }
    let model = std::path::absolute("crates/face-net/assets/facemesh/face_landmark.onnx")?;
    let session = onnx_models::session::load(&SessionOptions {
        model,
        provider: ProviderRequest::Cpu,
        threads: 1,
        parallel: 1,
        runtime: Some(library),
    })?;
    let input = session
        .inputs()
        .first()
        .map(|t| t.name.clone())
        .context("the model has no input")?;
    let ort_call = || -> Result<Vec<f32>> {
        let dims = vec![1, 3, side as i64, side as i64];
        Ok(session
            .run_f32(vec![(input.as_str(), dims, nchw.clone())])?
            .1)
    };
    let mut ours = CpuFaceMesh::new()?;

    // Warm-up, and the check that both run the same network.
    let a = ours.run(&nhwc).landmarks;
    let b = ort_call()?;
    if a.len() != b.len() {
        bail!(
            "landmark counts differ: ours {} vs ONNX Runtime {}",
            a.len(),
            b.len()
        );
    }
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);

    let (mut ours_ms, mut ort_ms) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..CALLS {
            std::hint::black_box(ours.run(std::hint::black_box(&nhwc)));
        }
        ours_ms.push(t.elapsed().as_secs_f64() * 1e3 / CALLS as f64);
        let t = Instant::now();
        for _ in 0..CALLS {
            std::hint::black_box(ort_call()?);
        }
        ort_ms.push(t.elapsed().as_secs_f64() * 1e3 / CALLS as f64);
        println!(
            "mesh round: ours_ms={:.3} ort_ms={:.3}",
            ours_ms.last().unwrap_or(&0.0),
            ort_ms.last().unwrap_or(&0.0)
        );
    }
    let (a, b) = (super::face::median(ours_ms), super::face::median(ort_ms));
    println!(
        "mesh-bench: ours_ms={a:.3} ort_ms={b:.3} ort_over_ours={:.2} threads=1 max_landmark_diff_px={max_diff:.4}",
        b / a
    );
    Ok(())
}
