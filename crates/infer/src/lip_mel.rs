//! The audio features of Wav2Lip-family models (Wav2Lip-96, EDTalk-256), as FaceFusion feeds
//! its ONNX exports: 80 mel columns per second, windows of 16 columns per video frame.
//!
//! Definition (FaceFusion 3.x `facefusion/audio.py`, `workflows/core.py` and the lip syncer,
//! which produce what these files were run with): audio → 16 kHz mono (the crate's
//! resampler) → peak-normalised (divided by max |x| of the whole clip) → pre-emphasis
//! `y[n] = x[n] − 0.97·x[n−1]` → STFT as `scipy.signal.stft` computes it (periodic Hann of
//! 800, n_fft 800, hop 200, 400 zeros padded at both ends, `ceil(n / 200) + 1` columns,
//! magnitudes divided by the window's sum) → FaceFusion's mel bank (`create_mel_filter_bank`,
//! **not** the usual three-edge triangles): 82 points evenly spaced on the HTK mel scale over
//! 55–7600 Hz, bin indices `idx = floor(801·hz/16000)`, and filter `i` a
//! `scipy.signal.windows.triang(idx[i+1] − idx[i])` over bins `[idx[i], idx[i+1])`, one
//! segment wide → per window `clip(log10(max(1e-5, m)) · 1.6 + 3.2, −4, 4)`.
//!
//! FaceFusion also separates the voice from music and noise before all this
//! (`batch_extract_voice`, a learned model); facesync does not, so music or noise under the
//! speech changes the result.
//!
//! Streaming: every step up to the mel filters is linear in the samples, so the clip's peak
//! is applied at [`LipMelStream::finish`] to the linear mel columns (exactly the same as
//! normalising the samples first) and no decoded audio is held: 320 bytes per column.
//!
//! Frame → window ([`lip_mel_window_end`], FaceFusion's `extract_audio_frames`): the column
//! indices `trunc(i · 80 / fps)` for `i = 0, 1, …` below the column count, those ≥ 16 kept; video
//! frame `k` reads the 16 columns that end at the `k`-th kept index. Frames past the last one
//! (the clip's last ≈ 0.2 s, and anything after the audio) get FaceFusion's empty audio frame:
//! every value [`LIP_MEL_SILENCE`] (a closed mouth). FaceFusion keeps the indices in 16 bits,
//! which wraps after 6.8 minutes of audio; facesync does not.

use crate::audio::{FEATURE_RATE, Mono16k};
use crate::spectrum::WindowedFft;
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

/// The column just past the end of video frame `frame`'s window at `fps` (its window is
/// `[end − 16, end)`), or `None` when FaceFusion gives the frame its empty audio frame.
/// `columns` is the clip's column count.
pub fn lip_mel_window_end(frame: usize, fps: f64, columns: usize) -> Option<usize> {
    // numpy's `arange(0, columns, step)` holds `i · step` for i < ceil(columns / step);
    // `astype(int16)` truncates; the first kept index is the first one ≥ 16.
    let step = COLUMNS_PER_SEC / fps;
    let len = (columns as f64 / step).ceil() as usize;
    let index = |i: usize| (i as f64 * step) as usize;
    let first = (0..len).find(|&i| index(i) >= LIP_MEL_COLUMNS)?;
    let i = first.checked_add(frame)?;
    (i < len).then(|| index(i))
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
        let Some(end) = lip_mel_window_end(frame, self.fps, self.columns.len()) else {
            out.fill(LIP_MEL_SILENCE);
            return;
        };
        let start = end - LIP_MEL_COLUMNS;
        for t in 0..LIP_MEL_COLUMNS {
            let col = &self.columns[start + t];
            for b in 0..BANDS {
                out[b * LIP_MEL_COLUMNS + t] = col[b];
            }
        }
    }
}

/// Builds [`LipMel`] from audio pushed block by block.
pub struct LipMelStream {
    audio: Mono16k,
    /// The 16 kHz samples of the last block, before pre-emphasis.
    mono: Vec<f32>,
    /// 16 kHz pre-emphasised samples from absolute index `base` on (f64 from here on, as
    /// FaceFusion's numpy computes).
    pcm: Vec<f64>,
    base: usize,
    /// Total 16 kHz samples so far.
    total: usize,
    prev: f64,
    peak: f64,
    linear: Vec<[f64; BANDS]>,
    /// Periodic Hann divided by its sum (scipy's `scaling="spectrum"`).
    fft: WindowedFft<f64>,
    filters: Vec<(usize, Vec<f64>)>,
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

/// FaceFusion's 80 filters as (first bin, weights): `create_mel_filter_bank` in
/// `facefusion/audio.py`.
fn filters() -> Vec<(usize, Vec<f64>)> {
    let (lo, hi) = (hz_to_mel(55.0), hz_to_mel(7600.0));
    // numpy's linspace(lo, hi, 82): lo + i·(hi − lo)/81, the last point exactly hi.
    let points: Vec<f64> = (0..BANDS + 2)
        .map(|i| {
            if i == BANDS + 1 {
                hi
            } else {
                lo + i as f64 * ((hi - lo) / (BANDS + 1) as f64)
            }
        })
        .collect();
    let idx: Vec<usize> = points
        .iter()
        .map(|&m| ((N_FFT + 1) as f64 * mel_to_hz(m) / f64::from(FEATURE_RATE)).floor() as usize)
        .collect();
    (0..BANDS)
        .map(|b| {
            let (start, end) = (idx[b], idx[b + 1].min(N_FFT / 2 + 1));
            (start, triang(end.saturating_sub(start)))
        })
        .collect()
}

/// `scipy.signal.windows.triang(m)` (symmetric): for odd m, `2k/(m+1)` rising to 1 at the
/// centre; for even m, `(2k−1)/m` with two equal middle values.
fn triang(m: usize) -> Vec<f64> {
    let half = m.div_ceil(2);
    let rise: Vec<f64> = (1..=half)
        .map(|k| {
            if m % 2 == 1 {
                2.0 * k as f64 / (m + 1) as f64
            } else {
                (2.0 * k as f64 - 1.0) / m as f64
            }
        })
        .collect();
    let fall = rise.iter().rev().skip(m % 2);
    rise.iter().chain(fall).copied().collect()
}

impl LipMelStream {
    /// A stream of interleaved audio with `channels` channels at `sample_rate` Hz.
    pub fn new(channels: u16, sample_rate: u32) -> Result<Self, InferError> {
        let audio = Mono16k::new(channels, sample_rate)?;
        let window: Vec<f64> = (0..N_FFT)
            .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / N_FFT as f64).cos())
            .collect();
        let sum: f64 = window.iter().sum();
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
            let x = f64::from(self.mono[i]);
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
            let mut col = [0.0f64; BANDS];
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
            .map(|col| {
                col.map(|m| ((m * scale).max(1e-5).log10() * 1.6 + 3.2).clamp(-4.0, 4.0) as f32)
            })
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
        // 1 s at 25 fps: 81 columns. Indices trunc(3.2·i) below 81: …, 12, 16, 19, 22, …, 80;
        // frame 0 ends at 16, frame 1 at 19, frame 19 at 76, frame 20 at 80, frame 21 none.
        let check = |frame, fps, cols, want: Option<usize>| {
            assert_eq!(
                lip_mel_window_end(frame, fps, cols),
                want,
                "frame {frame} at {fps}"
            )
        };
        check(0, 25.0, 81, Some(16));
        check(1, 25.0, 81, Some(19));
        check(19, 25.0, 81, Some(76));
        check(20, 25.0, 81, Some(80));
        check(21, 25.0, 81, None);
        // 30 fps: step 8/3, indices 0, 2, 5, 8, 10, 13, 16 (i = 6), 18, …
        check(0, 30.0, 81, Some(16));
        check(1, 30.0, 81, Some(18));
        check(0, 25.0, 10, None); // shorter than a window: the empty frame
    }

    #[test]
    fn window_past_the_end_is_the_empty_audio_frame() {
        let m = features(&vec![0.2; 16_000], 16_000, 4096);
        let w = m.window(40);
        assert!(w.iter().all(|&v| v == LIP_MEL_SILENCE));
        let w = m.window(0);
        assert!(w.iter().any(|&v| v != LIP_MEL_SILENCE));
    }

    #[test]
    fn triang_matches_scipy() {
        // scipy.signal.windows.triang(1), (2), (3), (4), (5).
        assert_eq!(triang(1), vec![1.0]);
        assert_eq!(triang(2), vec![0.5, 0.5]);
        assert_eq!(triang(3), vec![0.5, 1.0, 0.5]);
        assert_eq!(triang(4), vec![0.25, 0.75, 0.75, 0.25]);
        assert_eq!(
            triang(5),
            vec![1.0 / 3.0, 2.0 / 3.0, 1.0, 2.0 / 3.0, 1.0 / 3.0]
        );
    }

    #[test]
    fn filter_bank_is_facefusions() {
        // FaceFusion's bank: filter i covers bins [idx_i, idx_{i+1}) of its 82 points; the
        // first starts at floor(801·55/16000) = 2; the last ends at idx_80 = 368 (the 82nd
        // point, 7600 Hz, bin 380, ends no filter); consecutive filters touch without
        // overlapping.
        let f = filters();
        assert_eq!(f.len(), 80);
        assert_eq!(f[0].0, 2);
        let (last_start, last) = &f[79];
        assert_eq!((*last_start, last_start + last.len()), (356, 368));
        for pair in f.windows(2) {
            assert_eq!(pair[0].0 + pair[0].1.len(), pair[1].0);
        }
    }
}
