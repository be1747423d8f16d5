//! The audio features of Wav2Lip-family models (Wav2Lip-96, EDTalk-256), as FaceFusion feeds
//! its ONNX exports: 80 mel columns per second, windows of 16 columns per video frame.
//!
//! Definition (FaceFusion's `facefusion/audio.py` + lip syncer, which produce what these files
//! were run with): audio → 16 kHz mono (the crate's resampler) → peak-normalised (divided by
//! max |x| of the whole clip) → pre-emphasis `y[n] = x[n] − 0.97·x[n−1]` → STFT as
//! `scipy.signal.stft` computes it (periodic Hann of 800, n_fft 800, hop 200, 400 zeros
//! padded at both ends, `ceil(n / 200) + 1` columns, magnitudes divided by the window's sum)
//! → 80 triangular filters (peak 1) with edges evenly spaced on the HTK mel scale over
//! 55–7600 Hz → `clip(log10(max(1e-5, m)) · 1.6 + 3.2, −4, 4)`.
//!
//! Streaming: every step up to the mel filters is linear in the samples, so the clip's peak
//! is applied at [`LipMelStream::finish`] to the linear mel columns (exactly the same as
//! normalising the samples first) and no decoded audio is held: 320 bytes per column.
//!
//! Frame → window: video frame `k` at `fps` reads columns `[i, i + 16)` with
//! `i = floor(k · 80 / fps)`, clamped to `columns − 16` at the end of the clip (Wav2Lip's
//! inference rule); columns beyond the audio are silence ([`LIP_MEL_SILENCE`]).

use crate::audio::{FEATURE_RATE, Mono16k};
use crate::spectrum::{WindowedFft, periodic_hann};
use crate::{FeatureBuilder, FrameFeatures, InferError};

/// Mel columns per window (per video frame).
pub const LIP_MEL_COLUMNS: usize = 16;
/// Mel bands.
const BANDS: usize = 80;
const N_FFT: usize = 800;
const HOP: usize = 200;
/// Value of a silent column (`log10(1e-5) · 1.6 + 3.2` clipped to −4).
pub const LIP_MEL_SILENCE: f32 = -4.0;
/// Columns per second of audio.
const COLUMNS_PER_SEC: f64 = FEATURE_RATE as f64 / HOP as f64;

/// First column of video frame `frame`'s window at `fps` with `columns` columns in the clip.
pub fn lip_mel_window_start(frame: usize, fps: f64, columns: usize) -> usize {
    let i = (frame as f64 * COLUMNS_PER_SEC / fps).floor() as usize;
    i.min(columns.saturating_sub(LIP_MEL_COLUMNS))
}

/// The finished features: one 80-value column per 12.5 ms.
#[derive(Debug, Clone)]
pub struct LipMel {
    columns: Vec<[f32; BANDS]>,
    fps: f64,
    n_frames: usize,
}

impl LipMel {
    /// The scaled mel columns, in time order.
    pub fn columns(&self) -> &[[f32; BANDS]] {
        &self.columns
    }

    /// Video frames covered.
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }

    /// Frame `frame`'s window, `[80][16]` row-major (band-major, as the model's
    /// `source [1,1,80,16]`).
    pub fn window(&self, frame: usize) -> Vec<f32> {
        let mut out = vec![0.0; BANDS * LIP_MEL_COLUMNS];
        self.window_into(frame, &mut out);
        out
    }
}

impl FrameFeatures for LipMel {
    fn window_len(&self) -> usize {
        BANDS * LIP_MEL_COLUMNS
    }

    fn window_into(&self, frame: usize, out: &mut [f32]) {
        let start = lip_mel_window_start(frame, self.fps, self.columns.len());
        for t in 0..LIP_MEL_COLUMNS {
            let col = self.columns.get(start + t);
            for b in 0..BANDS {
                out[b * LIP_MEL_COLUMNS + t] = col.map_or(LIP_MEL_SILENCE, |c| c[b]);
            }
        }
    }
}

/// Builds [`LipMel`] from audio pushed block by block.
pub struct LipMelStream {
    audio: Mono16k,
    /// The 16 kHz samples of the last block, before pre-emphasis.
    mono: Vec<f32>,
    /// 16 kHz pre-emphasised samples from absolute index `base` on.
    pcm: Vec<f32>,
    base: usize,
    /// Total 16 kHz samples so far.
    total: usize,
    prev: f32,
    peak: f32,
    linear: Vec<[f32; BANDS]>,
    /// Periodic Hann divided by its sum (scipy's `scaling="spectrum"`).
    fft: WindowedFft,
    filters: Vec<(usize, Vec<f32>)>,
}

impl std::fmt::Debug for LipMelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LipMelStream")
            .field("audio", &self.audio)
            .field("samples_16k", &self.total)
            .field("columns", &self.linear.len())
            .finish_non_exhaustive()
    }
}

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// The 80 triangular filters as (first bin, weights).
fn filters() -> Vec<(usize, Vec<f32>)> {
    let (lo, hi) = (hz_to_mel(55.0), hz_to_mel(7600.0));
    let edges: Vec<f64> = (0..BANDS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (BANDS + 1) as f64))
        .collect();
    let bin_hz = f64::from(FEATURE_RATE) / N_FFT as f64;
    (0..BANDS)
        .map(|b| {
            let (l, c, h) = (edges[b], edges[b + 1], edges[b + 2]);
            let first = (l / bin_hz).floor() as usize;
            let last = ((h / bin_hz).ceil() as usize).min(N_FFT / 2);
            let w = (first..=last)
                .map(|k| {
                    let f = k as f64 * bin_hz;
                    let v = if f <= l || f >= h {
                        0.0
                    } else if f <= c {
                        (f - l) / (c - l)
                    } else {
                        (h - f) / (h - c)
                    };
                    v as f32
                })
                .collect();
            (first, w)
        })
        .collect()
}

impl LipMelStream {
    /// A stream of interleaved audio with `channels` channels at `sample_rate` Hz.
    pub fn new(channels: u16, sample_rate: u32) -> Result<Self, InferError> {
        let audio = Mono16k::new(channels, sample_rate)?;
        let window = periodic_hann(N_FFT);
        let sum: f32 = window.iter().sum();
        let window = window.into_iter().map(|w| w / sum).collect();
        Ok(Self {
            audio,
            mono: Vec::new(),
            pcm: vec![0.0; N_FFT / 2], // the 400 leading zeros
            base: 0,
            total: 0,
            prev: 0.0,
            peak: 0.0,
            linear: Vec::new(),
            fft: WindowedFft::new(window, N_FFT),
            filters: filters(),
        })
    }

    fn push_16k(&mut self, start: usize) {
        for i in start..self.mono.len() {
            let x = self.mono[i];
            self.peak = self.peak.max(x.abs());
            self.pcm.push(x - 0.97 * self.prev);
            self.prev = x;
        }
        self.total += self.mono.len() - start;
    }

    /// Analyses every column whose padded window is complete; drops samples no column needs.
    fn analyse(&mut self, end: bool) {
        // Column j covers padded samples [j·HOP, j·HOP + N_FFT) (400 leading zeros).
        let n_cols = if end {
            self.total.div_ceil(HOP) + 1
        } else {
            usize::MAX
        };
        if end {
            self.pcm.resize(self.pcm.len() + N_FFT, 0.0); // trailing zeros
        }
        while self.linear.len() < n_cols {
            let start = self.linear.len() * HOP;
            if start + N_FFT > self.base + self.pcm.len() {
                break;
            }
            let from = start - self.base;
            let spectrum = self.fft.spectrum(&self.pcm[from..from + N_FFT]);
            let mut col = [0.0f32; BANDS];
            for (out, (first, w)) in col.iter_mut().zip(&self.filters) {
                *out = w
                    .iter()
                    .zip(&spectrum[*first..])
                    .map(|(w, c)| w * c.norm())
                    .sum();
            }
            self.linear.push(col);
        }
        let keep_from = (self.linear.len() * HOP).min(self.base + self.pcm.len());
        self.pcm.drain(..keep_from - self.base);
        self.base = keep_from;
    }

    /// Adds interleaved samples (whole frames).
    pub fn push(&mut self, samples: &[f32]) -> Result<(), InferError> {
        self.mono.clear();
        self.audio.push(samples, &mut self.mono)?;
        self.push_16k(0);
        self.analyse(false);
        Ok(())
    }

    /// The features of `n_frames` video frames at `fps`.
    pub fn finish(mut self, fps: f64, n_frames: usize) -> Result<LipMel, InferError> {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(InferError::Audio(format!(
                "video frame rate {fps} is not a positive number"
            )));
        }
        self.mono.clear();
        self.audio.finish(&mut self.mono)?;
        self.push_16k(0);
        self.analyse(true);
        let scale = if self.peak > 0.0 {
            1.0 / self.peak
        } else {
            0.0
        };
        let columns = self
            .linear
            .iter()
            .map(|col| col.map(|m| ((m * scale).max(1e-5).log10() * 1.6 + 3.2).clamp(-4.0, 4.0)))
            .collect();
        Ok(LipMel {
            columns,
            fps,
            n_frames,
        })
    }
}

impl FeatureBuilder for LipMelStream {
    fn push(&mut self, interleaved: &[f32]) -> Result<(), InferError> {
        LipMelStream::push(self, interleaved)
    }

    fn finish(
        self: Box<Self>,
        fps: f64,
        n_frames: usize,
    ) -> Result<Box<dyn FrameFeatures>, InferError> {
        Ok(Box::new(LipMelStream::finish(*self, fps, n_frames)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(samples: &[f32], rate: u32, block: usize) -> LipMel {
        let mut s = LipMelStream::new(1, rate).unwrap();
        for b in samples.chunks(block) {
            s.push(b).unwrap();
        }
        s.finish(25.0, 25).unwrap()
    }

    #[test]
    fn column_count_follows_scipy() {
        for n in [0usize, 1, 199, 200, 201, 16_000] {
            let m = features(&vec![0.1; n], 16_000, 4096);
            assert_eq!(m.columns().len(), n.div_ceil(HOP) + 1, "{n} samples");
        }
    }

    #[test]
    fn block_size_does_not_matter() {
        let x: Vec<f32> = (0..20_000)
            .map(|i| ((i as f32) * 0.05).sin() * 0.3)
            .collect();
        let a = features(&x, 16_000, 100);
        let b = features(&x, 16_000, 20_000);
        assert_eq!(a.columns(), b.columns());
    }

    #[test]
    fn loudness_does_not_matter() {
        // Peak normalisation: the same clip at a tenth of the level gives the same features.
        let x: Vec<f32> = (0..16_000)
            .map(|i| ((i as f32) * 0.07).sin() * 0.8)
            .collect();
        let quiet: Vec<f32> = x.iter().map(|v| v * 0.1).collect();
        let (a, b) = (features(&x, 16_000, 4096), features(&quiet, 16_000, 4096));
        for (ca, cb) in a.columns().iter().zip(b.columns()) {
            for (va, vb) in ca.iter().zip(cb) {
                assert!((va - vb).abs() < 1e-4, "{va} vs {vb}");
            }
        }
    }

    #[test]
    fn window_mapping_at_both_ends() {
        // 1 s at 25 fps: 81 columns; frame 0 starts at 0, frame 24 at min(76, 81 − 16) = 65.
        let check = |frame, fps, cols, want| {
            assert_eq!(
                lip_mel_window_start(frame, fps, cols),
                want,
                "frame {frame}"
            )
        };
        check(0, 25.0, 81, 0);
        check(1, 25.0, 81, 3);
        check(24, 25.0, 81, 65);
        check(5, 30.0, 81, 13);
        check(0, 25.0, 10, 0); // shorter than a window: silence-padded
    }
}
