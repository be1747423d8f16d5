//! Audio → 16 kHz mono → log-mel frames → a feature window per video frame.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::InferError;
use crate::spectrum::WindowedFft;

/// Sample rate of the feature extractor.
pub(crate) const FEATURE_RATE: u32 = 16_000;
/// Analysis window: 25 ms at 16 kHz (Hann).
pub const WINDOW: usize = 400;
/// Hop between mel frames: 10 ms at 16 kHz (100 mel frames per second).
pub const HOP: usize = 160;
/// FFT size (the 400-sample window zero-padded).
const N_FFT: usize = 512;
/// Number of mel bands.
pub const MEL_BANDS: usize = 80;
/// Mel frames in each video frame's feature window (centred on the frame).
pub const WINDOW_FRAMES: usize = 16;
/// Log-mel value of silence: `ln(1e-10)`.
pub const SILENCE: f32 = -23.025_85;
/// Floor applied to mel power before the logarithm.
const FLOOR: f32 = 1e-10;

/// Per-clip audio features: log-mel frames at 100 frames/s plus the mapping to video frames.
///
/// Each mel frame `j` is the analysis of samples `[160 j, 160 j + 400)` of the 16 kHz mono
/// signal (centre at `(160 j + 200) / 16000` s); band powers are normalised so that a
/// full-scale sine carries power 1 (0 dBFS) spread over its bands.
#[derive(Debug, Clone)]
pub struct AudioFeatures {
    mel: Vec<[f32; MEL_BANDS]>,
    fps: f64,
    n_frames: usize,
}

impl AudioFeatures {
    /// Features for `n_frames` video frames at `video_fps` from interleaved `samples` with
    /// `channels` channels at `sample_rate` Hz. Audio shorter than the video leaves the
    /// remaining frames silent; audio beyond the last frame is ignored.
    pub fn from_samples(
        samples: &[f32],
        channels: u16,
        sample_rate: u32,
        video_fps: f64,
        n_frames: usize,
    ) -> Result<Self, InferError> {
        if channels == 0 {
            return Err(InferError::Audio("audio has 0 channels".into()));
        }
        if sample_rate == 0 {
            return Err(InferError::Audio("audio sample rate is 0 Hz".into()));
        }
        check_fps(video_fps)?;
        if !samples.len().is_multiple_of(channels as usize) {
            return Err(InferError::Audio(format!(
                "audio has {} samples, not a multiple of its {channels} channels",
                samples.len()
            )));
        }
        let mono = downmix(samples, channels);
        let mono = resample_to_16k(&mono, sample_rate)?;
        let mel = log_mel(&mono, mel_frames_needed(video_fps, n_frames));
        Ok(Self {
            mel,
            fps: video_fps,
            n_frames,
        })
    }

    /// Number of video frames these features cover.
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }

    /// The video frame rate.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// The log-mel frames (natural log of the band power, floored at 1e-10), 100 per second.
    pub fn mel_frames(&self) -> &[[f32; MEL_BANDS]] {
        &self.mel
    }

    /// Index of the mel frame whose centre is nearest to the centre of video frame `frame`.
    fn centre_mel(&self, frame: usize) -> i64 {
        let t = (frame as f64 + 0.5) / self.fps;
        ((t * FEATURE_RATE as f64 - (WINDOW / 2) as f64) / HOP as f64).round() as i64
    }

    /// The feature window of video frame `frame`: [`WINDOW_FRAMES`] × [`MEL_BANDS`] log-mel
    /// values, row-major (mel frames `c - 8 .. c + 8` around the frame centre `c`), silence
    /// ([`SILENCE`]) where the window leaves the audio.
    pub fn window(&self, frame: usize) -> Vec<f32> {
        let c = self.centre_mel(frame);
        let mut out = Vec::with_capacity(WINDOW_FRAMES * MEL_BANDS);
        for j in c - (WINDOW_FRAMES / 2) as i64..c + (WINDOW_FRAMES / 2) as i64 {
            match usize::try_from(j).ok().and_then(|j| self.mel.get(j)) {
                Some(row) => out.extend_from_slice(row),
                None => out.extend(std::iter::repeat_n(SILENCE, MEL_BANDS)),
            }
        }
        out
    }

    /// Speech-band level of each video frame in dBFS: the power of the mel bands centred
    /// between 300 and 3000 Hz, averaged over the mel frames inside the frame's time span.
    pub(crate) fn speech_db(&self) -> Vec<f32> {
        let bands = speech_bands();
        let per = (100.0 / self.fps).round().max(1.0) as i64;
        (0..self.n_frames)
            .map(|i| {
                let c = self.centre_mel(i);
                let lo = c - per / 2;
                let mut sum = 0.0f64;
                for j in lo..lo + per {
                    let Some(row) = usize::try_from(j).ok().and_then(|j| self.mel.get(j)) else {
                        continue;
                    };
                    sum += bands.clone().map(|b| f64::from(row[b].exp())).sum::<f64>();
                }
                (10.0 * (sum / per as f64).max(1e-12).log10()) as f32
            })
            .collect()
    }

    /// A mouth-opening value in `[0, 1]` per video frame: the speech-band level, smoothed
    /// over time (`[1, 2, 1] / 4` over frames), gated absolutely (`gate_db`: quieter frames
    /// open 0) and normalised per clip (the 95th percentile of the gated frames opens 1).
    pub fn mouth_opening(&self, gate_db: f32) -> Vec<f32> {
        let db = self.speech_db();
        let n = db.len();
        let smooth: Vec<f32> = (0..n)
            .map(|i| {
                let a = db[i.saturating_sub(1)];
                let c = db[i];
                let b = db[(i + 1).min(n - 1)];
                (a + 2.0 * c + b) / 4.0
            })
            .collect();
        let mut loud: Vec<f32> = smooth.iter().copied().filter(|&d| d > gate_db).collect();
        if loud.is_empty() {
            return vec![0.0; n];
        }
        loud.sort_by(f32::total_cmp);
        let top = loud[((loud.len() - 1) as f32 * 0.95).round() as usize];
        let range = (top - gate_db).max(1.0);
        smooth
            .iter()
            .map(|&d| ((d - gate_db) / range).clamp(0.0, 1.0))
            .collect()
    }
}

/// Mel bands whose centre lies in the speech band 300–3000 Hz.
fn speech_bands() -> std::ops::Range<usize> {
    let centres = mel_centres();
    let lo = centres.iter().position(|&f| f >= 300.0).unwrap_or(0);
    let hi = centres
        .iter()
        .position(|&f| f > 3000.0)
        .unwrap_or(MEL_BANDS);
    lo..hi
}

/// Averages the channels of interleaved audio.
pub(crate) fn downmix(samples: &[f32], channels: u16) -> Vec<f32> {
    let c = channels as usize;
    if c == 1 {
        return samples.to_vec();
    }
    let scale = 1.0 / c as f32;
    samples
        .chunks_exact(c)
        .map(|f| f.iter().sum::<f32>() * scale)
        .collect()
}

/// Resamples mono audio to 16 kHz with rubato's synchronous FFT resampler (band-limited,
/// Blackman-Harris anti-aliasing), delay trimmed, length `ceil(n · 16000 / rate)`.
pub(crate) fn resample_to_16k(mono: &[f32], rate: u32) -> Result<Vec<f32>, InferError> {
    if rate == FEATURE_RATE || mono.is_empty() {
        return Ok(mono.to_vec());
    }
    let err =
        |e: &dyn std::fmt::Display| InferError::Audio(format!("resampling from {rate} Hz: {e}"));
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        FEATURE_RATE as usize,
        1024,
        1,
        FixedSync::Both,
    )
    .map_err(|e| err(&e))?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| err(&e))?;
    let out_len = resampler.process_all_needed_output_len(mono.len());
    let mut out = vec![0.0f32; out_len];
    let produced = {
        let mut output = InterleavedSlice::new_mut(&mut out, 1, out_len).map_err(|e| err(&e))?;
        resampler
            .process_all_into_buffer(&input, &mut output, mono.len(), None)
            .map_err(|e| err(&e))?
            .1
    };
    out.truncate(produced);
    Ok(out)
}

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// The `MEL_BANDS + 2` edge frequencies of the HTK mel filterbank over 0–8000 Hz.
fn mel_edges() -> Vec<f64> {
    let top = hz_to_mel(f64::from(FEATURE_RATE) / 2.0);
    (0..MEL_BANDS + 2)
        .map(|i| mel_to_hz(top * i as f64 / (MEL_BANDS + 1) as f64))
        .collect()
}

/// Centre frequency of each mel band in Hz.
pub(crate) fn mel_centres() -> Vec<f64> {
    mel_edges()[1..=MEL_BANDS].to_vec()
}

/// Triangular HTK filters with peak 1 (not Slaney area-normalised): `[band][fft bin]`.
fn mel_filters() -> Vec<Vec<f32>> {
    let edges = mel_edges();
    let bins = N_FFT / 2 + 1;
    (0..MEL_BANDS)
        .map(|b| {
            let (lo, c, hi) = (edges[b], edges[b + 1], edges[b + 2]);
            (0..bins)
                .map(|k| {
                    let f = k as f64 * f64::from(FEATURE_RATE) / N_FFT as f64;
                    let w = if f <= lo || f >= hi {
                        0.0
                    } else if f <= c {
                        (f - lo) / (c - lo)
                    } else {
                        (hi - f) / (hi - c)
                    };
                    w as f32
                })
                .collect()
        })
        .collect()
}

/// Log-mel frames of 16 kHz mono audio: `n_out` frames (frames past the end of the audio
/// are silence).
pub(crate) fn log_mel(mono: &[f32], n_out: usize) -> Vec<[f32; MEL_BANDS]> {
    let mut mel = MelAnalyser::new();
    (0..n_out)
        .map(|j| {
            let start = j * HOP;
            if start >= mono.len() {
                return [SILENCE; MEL_BANDS];
            }
            mel.frame(&mono[start..mono.len().min(start + WINDOW)])
        })
        .collect()
}

/// One log-mel frame at a time: Hann window, real FFT, power normalised by Parseval, HTK mel
/// filters, natural log floored at [`FLOOR`].
struct MelAnalyser {
    fft: WindowedFft,
    norm: f32,
    filters: Vec<Vec<f32>>,
    power: Vec<f32>,
}

impl MelAnalyser {
    fn new() -> Self {
        let fft = WindowedFft::hann(WINDOW, N_FFT);
        // Parseval: the one-sided bin powers of a sine of amplitude a sum to
        // N/4 · a² · Σw²; scale so that a full-scale sine (a = 1) carries power 1.
        let norm = {
            let s: f32 = fft.window().iter().map(|w| w * w).sum();
            4.0 / (N_FFT as f32 * s)
        };
        Self {
            power: vec![0.0f32; fft.bins()],
            fft,
            norm,
            filters: mel_filters(),
        }
    }

    /// The frame of `samples` (at most [`WINDOW`]; missing ones count as zero).
    fn frame(&mut self, samples: &[f32]) -> [f32; MEL_BANDS] {
        self.fft.power_into(samples, &mut self.power);
        for p in &mut self.power {
            *p *= self.norm;
        }
        let mut row = [0.0f32; MEL_BANDS];
        for (out, filter) in row.iter_mut().zip(&self.filters) {
            let e: f32 = filter.iter().zip(&self.power).map(|(w, p)| w * p).sum();
            *out = e.max(FLOOR).ln();
        }
        row
    }
}

/// [`resample_to_16k`] fed block by block: the same chunks through the same resampler, so
/// the same output, while holding less than one chunk of input.
struct StreamResampler {
    /// `None` when the input is at 16 kHz already.
    fft: Option<Fft<f32>>,
    rate: u32,
    /// Input not yet resampled (at most one chunk after each push).
    pending: Vec<f32>,
    /// Input frames seen.
    frames_in: usize,
    /// Output frames produced, including the start-up delay.
    raw_out: usize,
    /// Output frames of the start-up delay still to drop.
    to_trim: usize,
    chunk_out: Vec<f32>,
}

impl StreamResampler {
    fn new(rate: u32) -> Result<Self, InferError> {
        let fft = if rate == FEATURE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    FEATURE_RATE as usize,
                    1024,
                    1,
                    FixedSync::Both,
                )
                .map_err(|e| resample_err(rate, &e))?,
            )
        };
        let to_trim = fft.as_ref().map_or(0, |f| f.output_delay());
        let chunk_out = vec![0.0; fft.as_ref().map_or(0, |f| f.output_frames_max())];
        Ok(Self {
            fft,
            rate,
            pending: Vec::new(),
            frames_in: 0,
            raw_out: 0,
            to_trim,
            chunk_out,
        })
    }

    /// Resamples `mono`, appending to `out` what is ready.
    fn push(&mut self, mono: &[f32], out: &mut Vec<f32>) -> Result<(), InferError> {
        self.frames_in += mono.len();
        let Some(fft) = self.fft.as_ref() else {
            out.extend_from_slice(mono);
            return Ok(());
        };
        let next = fft.input_frames_next();
        self.pending.extend_from_slice(mono);
        let mut used = 0;
        while self.pending.len() - used > next {
            let n = self.chunk(used, None, out)?;
            used += n;
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// The rest: the last partial chunk, then silence until the output, delay dropped, is
    /// `ceil(frames_in · 16000 / rate)` long (as `process_all_into_buffer`).
    fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), InferError> {
        let Some(fft) = self.fft.as_ref() else {
            return Ok(());
        };
        let expected = (fft.resample_ratio() * self.frames_in as f64).ceil() as usize;
        let delay = fft.output_delay();
        let start = out.len();
        let kept_before = self.raw_out.saturating_sub(delay);
        if !self.pending.is_empty() {
            let left = self.pending.len();
            self.chunk(0, Some(left), out)?;
        }
        while self.raw_out < expected + delay {
            self.chunk(0, Some(0), out)?;
        }
        // Keep exactly `expected` frames in all (the pumping overshoots).
        let keep = expected.saturating_sub(kept_before);
        out.truncate(start + keep);
        Ok(())
    }

    /// Runs one chunk from `pending[offset..]` (`partial`: valid frames when short) and
    /// appends its output minus any delay still to drop; returns the input frames used.
    fn chunk(
        &mut self,
        offset: usize,
        partial: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<usize, InferError> {
        let rate = self.rate;
        let fft = self.fft.as_mut().expect("only called when resampling");
        let valid = self.pending.len() - offset;
        let input = InterleavedSlice::new(&self.pending[offset..], 1, valid)
            .map_err(|e| resample_err(rate, &e))?;
        let out_len = self.chunk_out.len();
        let mut output = rubato::audioadapter_buffers::direct::InterleavedSlice::new_mut(
            &mut self.chunk_out,
            1,
            out_len,
        )
        .map_err(|e| resample_err(rate, &e))?;
        let indexing = rubato::Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let (n_in, n_out) = fft
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| resample_err(rate, &e))?;
        self.raw_out += n_out;
        let skip = self.to_trim.min(n_out);
        self.to_trim -= skip;
        out.extend_from_slice(&self.chunk_out[skip..n_out]);
        Ok(n_in)
    }
}

fn resample_err(rate: u32, e: &dyn std::fmt::Display) -> InferError {
    InferError::Audio(format!("resampling from {rate} Hz: {e}"))
}

/// Interleaved audio of any channel count and rate → 16 kHz mono, block by block: the channels
/// averaged, then rubato's synchronous FFT resampler (chunks of 1024 frames, its start-up delay
/// dropped, `ceil(n · 16000 / rate)` samples out in all). The one front end of every audio
/// feature in facesync (the built-in model's, Wav2Lip/EDTalk's, LatentSync's Whisper mel), so
/// they all hear the same 16 kHz signal. Holds less than one resampler chunk.
///
/// ```
/// # fn main() -> Result<(), facesync_infer::InferError> {
/// let mut audio = facesync_infer::Mono16k::new(2, 48_000)?;
/// let mut pcm = Vec::new();
/// for block in vec![0.0f32; 2 * 48_000].chunks(4096) {
///     audio.push(block, &mut pcm)?;
/// }
/// audio.finish(&mut pcm)?;
/// assert_eq!(pcm.len(), 16_000);
/// # Ok(())
/// # }
/// ```
pub struct Mono16k {
    channels: u16,
    rate: u32,
    frames_in: u64,
    mono: Vec<f32>,
    resampler: StreamResampler,
}

impl std::fmt::Debug for Mono16k {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mono16k")
            .field("channels", &self.channels)
            .field("rate", &self.rate)
            .field("frames_in", &self.frames_in)
            .finish_non_exhaustive()
    }
}

impl Mono16k {
    /// The output rate, in Hz.
    pub const RATE: u32 = FEATURE_RATE;

    /// A stream of interleaved audio with `channels` channels at `sample_rate` Hz; an error
    /// for 0 channels or 0 Hz.
    pub fn new(channels: u16, sample_rate: u32) -> Result<Self, InferError> {
        if channels == 0 {
            return Err(InferError::Audio("audio has 0 channels".into()));
        }
        if sample_rate == 0 {
            return Err(InferError::Audio("audio sample rate is 0 Hz".into()));
        }
        Ok(Self {
            channels,
            rate: sample_rate,
            frames_in: 0,
            mono: Vec::new(),
            resampler: StreamResampler::new(sample_rate)?,
        })
    }

    /// The input's channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The input's sample rate, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Input frames (samples per channel) pushed so far.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Adds the next interleaved samples (whole frames: a multiple of the channel count),
    /// appending to `out` the 16 kHz samples that are ready.
    pub fn push(&mut self, interleaved: &[f32], out: &mut Vec<f32>) -> Result<(), InferError> {
        let c = usize::from(self.channels);
        if !interleaved.len().is_multiple_of(c) {
            return Err(InferError::Audio(format!(
                "a block of {} samples is not whole frames of {c} channels",
                interleaved.len()
            )));
        }
        self.frames_in += (interleaved.len() / c) as u64;
        if c == 1 {
            return self.resampler.push(interleaved, out);
        }
        self.mono.clear();
        let scale = 1.0 / c as f32;
        self.mono.extend(
            interleaved
                .chunks_exact(c)
                .map(|f| f.iter().sum::<f32>() * scale),
        );
        self.resampler.push(&self.mono, out)
    }

    /// Appends the rest to `out`: the resampler's last partial chunk, so that the whole output
    /// is `ceil(frames_in · 16000 / rate)` samples long.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), InferError> {
        self.resampler.finish(out)
    }

    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.resampler.pending.len()
    }
}

/// Builds [`AudioFeatures`] from audio pushed block by block, holding only the mel frames and
/// less than one analysis window of samples: memory grows by 320 bytes per 10 ms of audio
/// instead of with the decoded samples. Gives the same features as
/// [`AudioFeatures::from_samples`] on the whole clip.
///
/// ```
/// # fn main() -> Result<(), facesync_infer::InferError> {
/// let mut stream = facesync_infer::FeatureStream::new(2, 44_100)?;
/// for block in vec![0.0f32; 2 * 44_100].chunks(4096) {
///     stream.push(block)?;
/// }
/// assert_eq!(stream.duration_secs(), 1.0);
/// let features = stream.finish(25.0, 25)?;
/// assert_eq!(features.n_frames(), 25);
/// # Ok(()) }
/// ```
pub struct FeatureStream {
    audio: Mono16k,
    /// 16 kHz samples from absolute index `base` on, not yet fully analysed.
    pcm: Vec<f32>,
    base: usize,
    mel: Vec<[f32; MEL_BANDS]>,
    analyser: MelAnalyser,
}

impl std::fmt::Debug for FeatureStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureStream")
            .field("audio", &self.audio)
            .field("mel_frames", &self.mel.len())
            .finish_non_exhaustive()
    }
}

impl FeatureStream {
    /// A stream of interleaved audio with `channels` channels at `sample_rate` Hz.
    pub fn new(channels: u16, sample_rate: u32) -> Result<Self, InferError> {
        Ok(Self {
            audio: Mono16k::new(channels, sample_rate)?,
            pcm: Vec::new(),
            base: 0,
            mel: Vec::new(),
            analyser: MelAnalyser::new(),
        })
    }

    /// Adds the next interleaved samples (whole frames: a multiple of the channel count).
    pub fn push(&mut self, samples: &[f32]) -> Result<(), InferError> {
        self.audio.push(samples, &mut self.pcm)?;
        self.analyse(false);
        Ok(())
    }

    /// Seconds of audio pushed so far.
    pub fn duration_secs(&self) -> f64 {
        self.audio.frames_in() as f64 / f64::from(self.audio.sample_rate())
    }

    /// The features for `n_frames` video frames at `video_fps`: audio shorter than the video
    /// leaves the remaining frames silent; audio beyond the last frame is ignored.
    pub fn finish(mut self, video_fps: f64, n_frames: usize) -> Result<AudioFeatures, InferError> {
        check_fps(video_fps)?;
        self.audio.finish(&mut self.pcm)?;
        self.analyse(true);
        let needed = mel_frames_needed(video_fps, n_frames);
        self.mel.resize(needed, [SILENCE; MEL_BANDS]);
        Ok(AudioFeatures {
            mel: self.mel,
            fps: video_fps,
            n_frames,
        })
    }

    /// Analyses every mel frame whose window is complete (at the end: every frame that starts
    /// before the end of the audio, zero-padded), then drops the samples no frame needs.
    fn analyse(&mut self, end: bool) {
        let total = self.base + self.pcm.len();
        loop {
            let start = self.mel.len() * HOP;
            let complete = start + WINDOW <= total;
            if !(complete || end && start < total) {
                break;
            }
            let from = start - self.base;
            let row = self
                .analyser
                .frame(&self.pcm[from..self.pcm.len().min(from + WINDOW)]);
            self.mel.push(row);
        }
        let keep_from = (self.mel.len() * HOP).min(total);
        self.pcm.drain(..keep_from - self.base);
        self.base = keep_from;
    }
}

fn check_fps(video_fps: f64) -> Result<(), InferError> {
    if !(video_fps.is_finite() && video_fps > 0.0) {
        return Err(InferError::Audio(format!(
            "video frame rate {video_fps} is not a positive number"
        )));
    }
    Ok(())
}

/// Only the mel frames some video frame's window can reach.
fn mel_frames_needed(video_fps: f64, n_frames: usize) -> usize {
    let duration = n_frames as f64 / video_fps;
    (duration * 100.0).ceil() as usize + WINDOW_FRAMES + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use realfft::RealFftPlanner;

    fn tone(freq: f64, rate: u32, secs: f64, amp: f32, channels: u16) -> Vec<f32> {
        let n = (secs * f64::from(rate)) as usize;
        (0..n)
            .flat_map(|i| {
                let v = amp
                    * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32;
                std::iter::repeat_n(v, channels as usize)
            })
            .collect()
    }

    /// Frequency of the strongest FFT bin and the RMS of `x`.
    fn peak_and_rms(x: &[f32], rate: f64) -> (f64, f64) {
        let n = x.len();
        let mut planner = RealFftPlanner::<f64>::new();
        let fft = planner.plan_fft_forward(n);
        let mut input: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let mut out = fft.make_output_vec();
        fft.process(&mut input, &mut out).unwrap();
        let (k, _) = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.norm().total_cmp(&b.1.norm()))
            .unwrap();
        let rms = (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64).sqrt();
        (k as f64 * rate / n as f64, rms)
    }

    #[test]
    fn resampler_keeps_tone_frequency_and_amplitude() {
        let stereo = tone(1000.0, 44_100, 1.0, 0.5, 2);
        let mono = downmix(&stereo, 2);
        let out = resample_to_16k(&mono, 44_100).unwrap();
        assert_eq!(out.len(), 16_000, "ceil(44100 * 16000 / 44100)");
        // Skip the edges (filter ramps), analyse 0.5 s exactly (8000 samples, 2 Hz bins).
        let (f, rms) = peak_and_rms(&out[4000..12_000], 16_000.0);
        assert!((f - 1000.0).abs() <= 2.0, "peak at {f} Hz");
        let expected = 0.5 / 2f64.sqrt();
        assert!(
            (rms - expected).abs() < 0.01 * expected,
            "rms {rms} vs {expected}"
        );
    }

    #[test]
    fn downmix_averages_channels() {
        assert_eq!(downmix(&[1.0, 3.0, -1.0, 1.0], 2), vec![2.0, 0.0]);
    }

    fn loudest_band(freq: f64) -> usize {
        let mono = tone(freq, 16_000, 0.2, 0.5, 1);
        let mel = log_mel(&mono, 10);
        let row = mel[5];
        (0..MEL_BANDS)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap()
    }

    /// Deterministic noise-plus-tone test audio.
    fn test_audio(rate: u32, channels: u16, secs: f64, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        tone(440.0, rate, secs, 0.3, channels)
            .into_iter()
            .map(|v| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v + (x as f32 / u32::MAX as f32 - 0.5) * 0.2
            })
            .collect()
    }

    fn streamed(samples: &[f32], channels: u16, rate: u32, blocks: &[usize]) -> FeatureStream {
        let mut stream = FeatureStream::new(channels, rate).unwrap();
        let mut rest = samples;
        let mut k = 0;
        while !rest.is_empty() {
            let n = (blocks[k % blocks.len()] * channels as usize).min(rest.len());
            stream.push(&rest[..n]).unwrap();
            rest = &rest[n..];
            k += 1;
        }
        stream
    }

    #[test]
    fn streamed_features_equal_the_whole_clip_features() {
        for (rate, channels, secs, n_frames) in [
            (16_000, 1, 1.0, 25),
            (44_100, 2, 1.3, 30),
            (48_000, 2, 0.05, 25),
            (22_050, 1, 2.0, 40),
        ] {
            let samples = test_audio(rate, channels, secs, rate);
            let whole =
                AudioFeatures::from_samples(&samples, channels, rate, 25.0, n_frames).unwrap();
            for blocks in [&[1usize][..], &[7, 1000, 3], &[100_000]] {
                let stream = streamed(&samples, channels, rate, blocks);
                assert!((stream.duration_secs() - secs).abs() < 1e-3);
                let got = stream.finish(25.0, n_frames).unwrap();
                assert_eq!(
                    got.mel_frames(),
                    whole.mel_frames(),
                    "{rate} Hz × {channels}, blocks {blocks:?}"
                );
            }
        }
    }

    #[test]
    fn a_stream_holds_less_than_a_window_of_samples() {
        let samples = test_audio(48_000, 2, 3.0, 7);
        let stream = streamed(&samples, 2, 48_000, &[4096]);
        assert!(
            stream.pcm.len() < WINDOW,
            "{} samples held",
            stream.pcm.len()
        );
        assert!(
            stream.audio.pending() <= 1024 * 3,
            "{}",
            stream.audio.pending()
        );
        assert!(stream.audio.mono.capacity() <= 4096);
    }

    #[test]
    fn a_block_of_partial_frames_is_an_error() {
        let mut stream = FeatureStream::new(2, 16_000).unwrap();
        let err = stream.push(&[0.0; 3]).unwrap_err().to_string();
        assert!(err.contains("not whole frames of 2 channels"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn tone_lands_in_its_mel_band(freq in 100.0f64..7000.0) {
            let band = loudest_band(freq);
            let edges = mel_edges();
            // The loudest band's triangle contains the tone.
            prop_assert!(edges[band] <= freq + 16.0 && freq - 16.0 <= edges[band + 2],
                "{freq} Hz in band {band} ({}..{})", edges[band], edges[band + 2]);
        }
    }

    #[test]
    fn full_scale_tone_is_about_zero_dbfs() {
        let mono = tone(1000.0, 16_000, 0.3, 1.0, 1);
        let mel = log_mel(&mono, 20);
        let total: f32 = mel[10].iter().map(|v| v.exp()).sum();
        // Adjacent triangles sum to 1 at any frequency (power normalised by Parseval).
        assert!((0.95..1.05).contains(&total), "band power sum {total}");
    }

    #[test]
    fn windows_pad_with_silence_and_count_frames() {
        let mono = tone(440.0, 16_000, 0.5, 0.5, 1);
        let f = AudioFeatures::from_samples(&mono, 1, 16_000, 25.0, 50).unwrap();
        assert_eq!(f.n_frames(), 50);
        let w0 = f.window(0);
        assert_eq!(w0.len(), WINDOW_FRAMES * MEL_BANDS);
        // Frame 0's window starts before the audio: its first rows are silence.
        assert!(w0[..MEL_BANDS].iter().all(|&v| v == SILENCE));
        // Frame 40 (1.6 s) is past the 0.5 s of audio: all silence.
        assert!(f.window(40).iter().all(|&v| v == SILENCE));
        // 25 fps: consecutive frames move the window by 4 mel frames.
        assert_eq!(f.centre_mel(1) - f.centre_mel(0), 4);
        let open = f.mouth_opening(-55.0);
        assert!(open[5] > 0.5 && open[40] == 0.0, "{open:?}");
    }

    #[test]
    fn bad_audio_is_rejected_with_a_message() {
        let e = AudioFeatures::from_samples(&[0.0; 3], 2, 16_000, 25.0, 1).unwrap_err();
        assert!(e.to_string().contains("multiple of its 2 channels"), "{e}");
        assert!(AudioFeatures::from_samples(&[], 0, 16_000, 25.0, 1).is_err());
        assert!(AudioFeatures::from_samples(&[], 1, 16_000, 0.0, 1).is_err());
    }
}
