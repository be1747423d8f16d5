//! The built-in sample: a real face photo moved by a smooth head motion, plus speech-like audio.
//!
//! The photo is `assets/astronaut.png` in this crate (NASA portrait of Eileen Collins, public
//! domain; see `assets/README.md`). Each frame is the photo under a similarity transform about its
//! centre: rotation ±4°, scale ±5 %, translation ±3 % of the width and ±2 % of the height, each a
//! sinusoid of its own period, sampled bilinearly (edges clamped). The audio is 16 kHz mono: voiced
//! "syllables" at 4 per second (raised-cosine on/off envelope, 60 % duty), each with its own pitch
//! (120–180 Hz) and formants (F1 500–800 Hz, F2 1200–2000 Hz) shaping 25 harmonics. Everything is
//! deterministic.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use frame::Frame;
use media_io::{Rational, VideoInfo, VideoWriter, WriterOptions};
use progress_core::Phase;

use crate::PipelineError;

const PHOTO: &[u8] = include_bytes!("../assets/astronaut.png");

/// What sample to make.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Frame width in pixels (default 512).
    pub width: u32,
    /// Frame height in pixels (default 512).
    pub height: u32,
    /// Length in seconds (default 4).
    pub seconds: f64,
    /// Frames per second (default 25).
    pub fps: u32,
    /// Audio sample rate (default 16 000).
    pub sample_rate: u32,
}

impl Default for SampleSpec {
    fn default() -> Self {
        Self {
            width: 512,
            height: 512,
            seconds: 4.0,
            fps: 25,
            sample_rate: 16_000,
        }
    }
}

impl SampleSpec {
    /// Number of video frames.
    pub fn frame_count(&self) -> u64 {
        (self.seconds * f64::from(self.fps)).round() as u64
    }
}

/// Where [`write_sample`] put the sample.
#[derive(Debug, Clone)]
pub struct SampleFiles {
    /// The Y4M video (4:2:0).
    pub video: PathBuf,
    /// The WAV audio (16-bit mono).
    pub audio: PathBuf,
}

/// Writes `sample.y4m` and `sample.wav` into `dir` (created if needed), frame by frame.
pub fn write_sample(dir: &Path, spec: &SampleSpec) -> Result<SampleFiles, PipelineError> {
    write_sample_reporting(
        dir,
        spec,
        &Phase::detached("Making the sample", None, "frames"),
    )
}

/// Like [`write_sample`], counting the frames written on `phase` (its total is set to the
/// frame count) and stopping with [`PipelineError::Cancelled`] between frames once its run is
/// cancelled. Both files are written under temporary names and renamed when complete, so an
/// error or a cancellation never leaves a partial sample behind. Does not end `phase`.
pub fn write_sample_reporting(
    dir: &Path,
    spec: &SampleSpec,
    phase: &Phase,
) -> Result<SampleFiles, PipelineError> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    let video = dir.join("sample.y4m");
    let audio = dir.join("sample.wav");
    let photo = photo();
    let info = VideoInfo {
        width: spec.width,
        height: spec.height,
        fps: Rational::new(spec.fps, 1),
        frame_count: Some(spec.frame_count()),
    };
    phase.set_total(Some(spec.frame_count()));
    let cancelled = || PipelineError::Cancelled {
        phase: "making the sample".into(),
    };
    let mut writer = VideoWriter::create(&video, &info, &WriterOptions::default())?;
    for i in 0..spec.frame_count() {
        phase.check().map_err(|_| cancelled())?;
        let t = i as f64 / f64::from(spec.fps);
        writer.write_frame(&render_frame(&photo, spec.width, spec.height, t))?;
        phase.inc(1);
    }
    phase.check().map_err(|_| cancelled())?;
    write_wav(
        &audio,
        &speech(spec.seconds, spec.sample_rate),
        spec.sample_rate,
    )?;
    // Renamed last: a sample.y4m exists only next to a complete sample.wav of the same run.
    writer.finish()?;
    Ok(SampleFiles { video, audio })
}

/// Writes 16-bit mono WAV under a temporary name, then renames it to `path`.
fn write_wav(path: &Path, samples: &[f32], rate: u32) -> Result<(), PipelineError> {
    let wav_spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let tmp = path.with_file_name(format!(
        ".{}.facesync-tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let wav_err = |e: hound::Error| {
        let _ = std::fs::remove_file(&tmp);
        PipelineError::Media(media_io::MediaError::Wav {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let mut w = hound::WavWriter::create(&tmp, wav_spec).map_err(wav_err)?;
    for s in samples {
        w.write_sample((s * 32767.0).round() as i16)
            .map_err(wav_err)?;
    }
    w.finalize().map_err(wav_err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        PipelineError::io(path, e)
    })
}

/// The embedded photo, decoded.
pub fn photo() -> Frame {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(PHOTO));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .expect("the embedded photo is a valid PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("small image")];
    let info = reader
        .next_frame(&mut buf)
        .expect("the embedded photo decodes");
    buf.truncate(info.buffer_size());
    assert_eq!(
        info.color_type,
        png::ColorType::Rgb,
        "the embedded photo is RGB"
    );
    Frame::new(info.width, info.height, buf).expect("sized")
}

/// The head pose at time `t` seconds: (angle in radians, scale, tx, ty as fractions of the frame).
pub(crate) fn pose(t: f64) -> (f64, f64, f64, f64) {
    let angle = (4.0f64).to_radians() * (2.0 * PI * t / 2.7).sin();
    let scale = 1.0 + 0.05 * (2.0 * PI * t / 3.3 + 1.0).sin();
    let tx = 0.03 * (2.0 * PI * t / 2.1).sin();
    let ty = 0.02 * (2.0 * PI * t / 3.7 + 0.5).sin();
    (angle, scale, tx, ty)
}

/// The inverse map of the frame at time `t`: frame pixel `(x, y)` → photo coordinates, clamped
/// to the photo (the photo fitted to the frame, moved by [`pose`]).
fn to_photo(photo: &Frame, width: u32, height: u32, t: f64) -> impl Fn(u32, u32) -> (f64, f64) {
    let (angle, scale, tx, ty) = pose(t);
    let fit = (f64::from(width) / f64::from(photo.width()))
        .min(f64::from(height) / f64::from(photo.height()));
    let s = fit * scale;
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = (
        f64::from(width - 1) / 2.0 + tx * f64::from(width),
        f64::from(height - 1) / 2.0 + ty * f64::from(height),
    );
    let (px, py) = (
        f64::from(photo.width() - 1) / 2.0,
        f64::from(photo.height() - 1) / 2.0,
    );
    let (x_max, y_max) = (f64::from(photo.width() - 1), f64::from(photo.height() - 1));
    move |x, y| {
        let (dx, dy) = (f64::from(x) - cx, f64::from(y) - cy);
        let sx = (cos * dx + sin * dy) / s + px;
        let sy = (-sin * dx + cos * dy) / s + py;
        (sx.clamp(0.0, x_max), sy.clamp(0.0, y_max))
    }
}

/// One frame: the photo fitted to the frame, moved by [`pose`] at time `t`. Rows are
/// rendered on all cores (the sample is made before every run of `cargo xtask pipeline`).
pub fn render_frame(photo: &Frame, width: u32, height: u32, t: f64) -> Frame {
    let map = to_photo(photo, width, height, t);
    let (pw, ph) = (photo.width() as usize, photo.height() as usize);
    let src = photo.data();
    let row_bytes = width as usize * 3;
    let render_row = |y: u32, out: &mut [u8]| {
        for (x, px_out) in (0..width).zip(out.chunks_exact_mut(3)) {
            let (sx, sy) = map(x, y);
            // Non-negative: truncation is the floor (and NaN gives 0 either way).
            let (x0, y0) = (sx as usize, sy as usize);
            let (x1, y1) = ((x0 + 1).min(pw - 1), (y0 + 1).min(ph - 1));
            let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
            for (c, v) in px_out.iter_mut().enumerate() {
                let at = |xx: usize, yy: usize| f64::from(src[(yy * pw + xx) * 3 + c]);
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bot = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                *v = round_to_u8(top * (1.0 - fy) + bot * fy);
            }
        }
    };
    let mut data = vec![0u8; row_bytes * height as usize];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows_per = (height as usize).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (i, part) in data.chunks_mut(rows_per * row_bytes).enumerate() {
            let render_row = &render_row;
            scope.spawn(move || {
                for (r, out) in part.chunks_exact_mut(row_bytes).enumerate() {
                    render_row((i * rows_per + r) as u32, out);
                }
            });
        }
    });
    Frame::new(width, height, data).expect("sized")
}

/// `v.round().clamp(0.0, 255.0) as u8` without libm's `round` call: the truncation, plus one
/// when the (exactly computed) fraction is at least one half; negative values and NaN give 0.
fn round_to_u8(v: f64) -> u8 {
    let t = v as u64;
    let r = t.saturating_add(u64::from(v - t as f64 >= 0.5));
    r.min(255) as u8
}

/// Speech-like audio in `[-0.5, 0.5]`.
pub fn speech(seconds: f64, rate: u32) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    let syllable = 0.25; // seconds
    let mut phase = 0.0f64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let k = (t / syllable).floor();
        let u = t / syllable - k; // position within the syllable
        // A cheap deterministic per-syllable variation.
        let h = |salt: f64| {
            ((k * 12.9898 + salt * 78.233).sin() * 43_758.545)
                .fract()
                .abs()
        };
        let f0 = 120.0 + 60.0 * h(1.0);
        let f1 = 500.0 + 300.0 * h(2.0);
        let f2 = 1200.0 + 800.0 * h(3.0);
        let env = if u < 0.6 {
            (PI * u / 0.6).sin().powi(2)
        } else {
            0.0
        };
        phase += 2.0 * PI * f0 / f64::from(rate);
        let mut v = 0.0;
        for m in 1..=25 {
            let f = f0 * f64::from(m);
            let g =
                1.0 / (1.0 + ((f - f1) / 120.0).powi(2)) + 0.6 / (1.0 + ((f - f2) / 180.0).powi(2));
            v += g * (phase * f64::from(m)).sin();
        }
        out.push((0.2 * env * v) as f32);
    }
    let peak = out.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-9);
    out.iter().map(|v| v * 0.5 / peak).collect()
}

#[cfg(test)]
mod tests {
    use progress_core::CancelToken;

    use super::*;

    proptest::proptest! {
        #[test]
        fn rounding_to_u8_is_round_then_clamp(v in -10.0f64..300.0) {
            proptest::prop_assert_eq!(round_to_u8(v), v.round().clamp(0.0, 255.0) as u8);
        }
    }

    /// The renderer as it was written first (one thread, libm's floor and round), on the
    /// same inverse map.
    fn render_reference(photo: &Frame, width: u32, height: u32, t: f64) -> Frame {
        let map = to_photo(photo, width, height, t);
        let (pw, ph) = (photo.width() as usize, photo.height() as usize);
        let src = photo.data();
        let mut data = Vec::new();
        for y in 0..height {
            for x in 0..width {
                let (sx, sy) = map(x, y);
                let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(pw - 1), (y0 + 1).min(ph - 1));
                let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
                for c in 0..3 {
                    let at = |xx: usize, yy: usize| f64::from(src[(yy * pw + xx) * 3 + c]);
                    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                    let bot = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                    data.push((top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        Frame::new(width, height, data).unwrap()
    }

    #[test]
    fn frames_are_the_reference_renderers() {
        let photo = photo();
        for (w, h, t) in [(64, 48, 0.0), (97, 31, 1.37), (256, 256, 3.9)] {
            assert_eq!(
                render_frame(&photo, w, h, t),
                render_reference(&photo, w, h, t),
                "{w}x{h} at {t}"
            );
        }
    }

    #[test]
    fn rounding_to_u8_at_the_edges() {
        for v in [
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            0.49999999999999994,
            254.5,
            255.4,
            255.5,
            1e30,
            -1e30,
        ] {
            assert_eq!(round_to_u8(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
        }
        assert_eq!(round_to_u8(f64::NAN), 0);
    }

    fn tiny() -> SampleSpec {
        SampleSpec {
            width: 32,
            height: 32,
            seconds: 0.2,
            ..SampleSpec::default()
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_both_files_and_counts_frames() {
        let dir = tempfile::tempdir().unwrap();
        let phase = Phase::detached("sample", None, "frames");
        let files = write_sample_reporting(dir.path(), &tiny(), &phase).unwrap();
        assert_eq!(phase.total(), Some(5));
        assert_eq!(phase.pos(), 5);
        assert_eq!(listing(dir.path()), ["sample.wav", "sample.y4m"]);
        let audio = media_io::read_audio(&files.audio).unwrap();
        assert_eq!(audio.samples.len(), 3200);
    }

    #[test]
    fn a_cancelled_sample_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let token = CancelToken::new();
        token.cancel();
        let phase = Phase::detached_with(token, "sample", None, "frames");
        let err = write_sample_reporting(dir.path(), &tiny(), &phase).unwrap_err();
        assert!(
            matches!(err, PipelineError::Cancelled { .. }),
            "expected a cancellation, got {err}"
        );
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }
}
