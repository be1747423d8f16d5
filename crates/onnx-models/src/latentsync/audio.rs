//! Audio of any rate and channel count → 16 kHz mono → Whisper's log-mel, pushed block by
//! block: the downmix and rubato's synchronous FFT resampler (the same settings as `infer`'s
//! built-in features: chunks of 1024 frames, the start-up delay dropped, the output
//! `ceil(n · 16000 / rate)` long), then [`MelStream`]. Less than one resampler chunk and one
//! STFT window of samples is held at any time.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use infer::{FeatureBuilder, FrameFeatures, InferError};

use super::LatentSyncError;
use super::engine::WhisperEmbeddings;
use super::graphs::WhisperGraph;
use super::mel::{MelStream, SAMPLE_RATE, WhisperMel};

fn resample_err(rate: u32, e: &dyn std::fmt::Display) -> LatentSyncError {
    LatentSyncError::Audio(format!("resampling from {rate} Hz: {e}"))
}

/// The streaming resampler (`None` inside when the input is at 16 kHz already).
struct Resample {
    fft: Option<Fft<f32>>,
    rate: u32,
    pending: Vec<f32>,
    frames_in: usize,
    kept: usize,
    to_trim: usize,
    chunk_out: Vec<f32>,
}

impl Resample {
    fn new(rate: u32) -> Result<Self, LatentSyncError> {
        let fft = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    SAMPLE_RATE as usize,
                    1024,
                    1,
                    FixedSync::Both,
                )
                .map_err(|e| resample_err(rate, &e))?,
            )
        };
        Ok(Self {
            to_trim: fft.as_ref().map_or(0, |f| f.output_delay()),
            chunk_out: vec![0.0; fft.as_ref().map_or(0, |f| f.output_frames_max())],
            fft,
            rate,
            pending: Vec::new(),
            frames_in: 0,
            kept: 0,
        })
    }

    /// Resamples `mono`, handing what is ready to `sink`.
    fn push(&mut self, mono: &[f32], sink: &mut MelStream) -> Result<(), LatentSyncError> {
        self.frames_in += mono.len();
        let Some(next) = self.fft.as_ref().map(|f| f.input_frames_next()) else {
            sink.push(mono);
            return Ok(());
        };
        self.pending.extend_from_slice(mono);
        let mut used = 0;
        while self.pending.len() - used >= next {
            used += self.chunk(used, None, sink)?;
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// The rest: the partial chunk, then silence until `ceil(frames_in · 16000 / rate)`
    /// samples have come out.
    fn finish(&mut self, sink: &mut MelStream) -> Result<(), LatentSyncError> {
        let Some(fft) = self.fft.as_ref() else {
            return Ok(());
        };
        let expected = (fft.resample_ratio() * self.frames_in as f64).ceil() as usize;
        if !self.pending.is_empty() {
            let left = self.pending.len();
            self.chunk(0, Some(left), sink)?;
            self.pending.clear();
        }
        while self.kept < expected {
            self.chunk(0, Some(0), sink)?;
        }
        Ok(())
    }

    fn chunk(
        &mut self,
        offset: usize,
        partial: Option<usize>,
        sink: &mut MelStream,
    ) -> Result<usize, LatentSyncError> {
        let rate = self.rate;
        let fft = self.fft.as_mut().expect("only called when resampling");
        let expected = (fft.resample_ratio() * self.frames_in as f64).ceil() as usize;
        let valid = self.pending.len() - offset;
        let input = InterleavedSlice::new(&self.pending[offset..], 1, valid)
            .map_err(|e| resample_err(rate, &e))?;
        let out_len = self.chunk_out.len();
        let mut output = InterleavedSlice::new_mut(&mut self.chunk_out, 1, out_len)
            .map_err(|e| resample_err(rate, &e))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let (n_in, n_out) = fft
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| resample_err(rate, &e))?;
        let skip = self.to_trim.min(n_out);
        self.to_trim -= skip;
        let mut out = &self.chunk_out[skip..n_out];
        if partial.is_some() {
            // At the end: no more than the expected length.
            out = &out[..out.len().min(expected.saturating_sub(self.kept))];
        }
        self.kept += out.len();
        sink.push(out);
        Ok(n_in)
    }
}

/// Whisper's log-mel of audio pushed block by block (the decoded audio is never held).
pub(crate) struct WhisperAudio {
    channels: u16,
    resample: Resample,
    mono: Vec<f32>,
    mel: MelStream,
}

impl std::fmt::Debug for WhisperAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperAudio")
            .field("channels", &self.channels)
            .field("rate", &self.resample.rate)
            .field("mel", &self.mel)
            .finish_non_exhaustive()
    }
}

impl WhisperAudio {
    /// A stream of interleaved audio with `channels` channels at `sample_rate` Hz.
    pub(crate) fn new(channels: u16, sample_rate: u32) -> Result<Self, LatentSyncError> {
        if channels == 0 {
            return Err(LatentSyncError::Audio("audio has 0 channels".into()));
        }
        if sample_rate == 0 {
            return Err(LatentSyncError::Audio("audio sample rate is 0 Hz".into()));
        }
        Ok(Self {
            channels,
            resample: Resample::new(sample_rate)?,
            mono: Vec::new(),
            mel: MelStream::new(),
        })
    }

    /// Adds the next interleaved samples (whole frames).
    pub(crate) fn push(&mut self, interleaved: &[f32]) -> Result<(), LatentSyncError> {
        let c = usize::from(self.channels);
        if !interleaved.len().is_multiple_of(c) {
            return Err(LatentSyncError::Audio(format!(
                "a block of {} samples is not whole frames of {c} channels",
                interleaved.len()
            )));
        }
        self.mono.clear();
        let scale = 1.0 / c as f32;
        self.mono.extend(
            interleaved
                .chunks_exact(c)
                .map(|f| f.iter().sum::<f32>() * scale),
        );
        self.resample.push(&self.mono, &mut self.mel)
    }

    /// The clip's log-mel.
    pub(crate) fn finish(mut self) -> Result<WhisperMel, LatentSyncError> {
        self.resample.finish(&mut self.mel)?;
        Ok(self.mel.finish())
    }
}

/// The model's [`FeatureBuilder`]: the log-mel streamed, then the Whisper encoder over every
/// segment when the audio ends.
pub(crate) struct WhisperBuilder {
    pub(crate) audio: WhisperAudio,
    pub(crate) whisper: WhisperGraph,
}

impl FeatureBuilder for WhisperBuilder {
    fn push(&mut self, interleaved: &[f32]) -> Result<(), InferError> {
        Ok(self.audio.push(interleaved)?)
    }

    fn finish(
        self: Box<Self>,
        fps: f64,
        _n_frames: usize,
    ) -> Result<Box<dyn FrameFeatures>, InferError> {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(LatentSyncError::Audio(format!(
                "video frame rate {fps} is not a positive number"
            ))
            .into());
        }
        let this = *self;
        let mel = this.audio.finish()?;
        let whisper = this.whisper;
        let emb = WhisperEmbeddings::compute(&mel, fps, |segment| whisper.run(segment))?;
        Ok(Box::new(emb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampled_length_is_the_ceiling_of_the_ratio() {
        for (rate, n) in [
            (44_100u32, 44_100usize),
            (48_000, 12_345),
            (16_000, 999),
            (22_050, 1),
        ] {
            let mut a = WhisperAudio::new(2, rate).unwrap();
            let block = vec![0.1f32; 2 * 777];
            let mut left = n;
            while left > 0 {
                let k = left.min(777);
                a.push(&block[..2 * k]).unwrap();
                left -= k;
            }
            let expected = (n as f64 * 16_000.0 / f64::from(rate)).ceil() as usize;
            let mel = a.finish().unwrap();
            assert_eq!(mel.n_columns(), expected / 160, "{rate} Hz, {n} frames");
        }
    }

    #[test]
    fn bad_audio_is_named() {
        assert!(WhisperAudio::new(0, 16_000).is_err());
        let mut a = WhisperAudio::new(2, 16_000).unwrap();
        let e = a.push(&[0.0; 3]).unwrap_err().to_string();
        assert!(e.contains("not whole frames of 2 channels"), "{e}");
    }
}
