//! Shared helpers for the end-to-end tests in `tests/tests/`, the command line's tests and the
//! queue's tests.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use frame::Frame;
use media_io::{
    Rational, ReaderOptions, VideoInfo, VideoReader, VideoWriter, WriterOptions, Y4mChroma,
};
use pipeline::sample::{SampleSpec, write_sample};
use pipeline::{Inputs, PipelineConfig, PipelineError, Summary};
use progress_core::Progress;

/// A `Write` into shared memory, to read what a sink wrote after the run.
#[derive(Debug, Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    /// Everything written so far, as text.
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Writes the built-in sample, 160×160 and `seconds` long, into `dir`: the pipeline's inputs.
pub fn sample_inputs(dir: &Path, seconds: f64) -> Inputs {
    let spec = SampleSpec {
        width: 160,
        height: 160,
        seconds,
        ..SampleSpec::default()
    };
    let files = write_sample(dir, &spec).unwrap();
    Inputs {
        video: files.video,
        audio: files.audio,
    }
}

/// Runs the pipeline under a "Lip sync" job phase (finished, or failed with the error) with a
/// JSON-lines sink: the result and every event the sink wrote, one JSON value a line.
pub fn run_with_json(
    config: &PipelineConfig,
    inputs: &Inputs,
    out: &Path,
) -> (Result<Summary, PipelineError>, Vec<serde_json::Value>) {
    let buf = SharedBuf::default();
    let progress = Progress::builder()
        .sink(sinks::JsonLinesSink::new(buf.clone()))
        .start();
    let job = progress.phase("Lip sync", None, "frames");
    let result = pipeline::run(config, inputs, out, &job);
    match &result {
        Ok(_) => job.finish(),
        Err(e) => job.fail(e),
    }
    drop(job);
    progress.shutdown();
    let events = buf
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect();
    (result, events)
}

/// Reads a whole video: its info and every frame.
pub fn read_video(path: &Path) -> (VideoInfo, Vec<Frame>) {
    let mut reader = VideoReader::open(path, &ReaderOptions::default()).unwrap();
    let info = reader.info().clone();
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame().unwrap() {
        frames.push(f);
    }
    (info, frames)
}

/// Writes `n` flat frames whose red channel is `20 * index` (4:4:4 Y4M, 25 fps).
pub fn numbered_video(path: &Path, n: u32, size: u32) -> PathBuf {
    let info = VideoInfo {
        width: size,
        height: size,
        fps: Rational::new(25, 1),
        frame_count: None,
    };
    let options = WriterOptions {
        y4m_chroma: Y4mChroma::C444,
        ..Default::default()
    };
    let mut w = VideoWriter::create(path, &info, &options).unwrap();
    for i in 0..n {
        w.write_frame(&Frame::filled(size, size, [(20 * i) as u8, 100, 100]))
            .unwrap();
    }
    w.finish().unwrap()
}

/// Writes `seconds` of a quiet 16 kHz mono tone.
pub fn tone_wav(path: &Path, seconds: f64) -> PathBuf {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(seconds * 16_000.0).round() as usize {
        w.write_sample(((i as f32 * 0.07).sin() * 3000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    path.to_path_buf()
}

/// The names of the files in `dir`, sorted.
#[track_caller]
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `command` to the end and checks that it succeeded (its stderr in the panic message):
/// what it wrote.
#[track_caller]
pub fn output_ok(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
