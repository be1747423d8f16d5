//! Audio of any rate and channel count → 16 kHz mono (`infer::Mono16k`, the same front end as
//! every other model's features) → Whisper's log-mel, pushed block by block ([`MelStream`]).
//! Less than one resampler chunk and one STFT window of samples is held at any time.

use infer::{FeatureBuilder, FrameFeatures, InferError, Mono16k};

use super::LatentSyncError;
use super::engine::WhisperEmbeddings;
use super::graphs::WhisperGraph;
use super::mel::{MelStream, SAMPLE_RATE, WhisperMel};

/// Whisper's log-mel of audio pushed block by block (the decoded audio is never held).
pub(crate) struct WhisperAudio {
    audio: Mono16k,
    /// The 16 kHz samples of the last block.
    pcm: Vec<f32>,
    mel: MelStream,
}

impl std::fmt::Debug for WhisperAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperAudio")
            .field("audio", &self.audio)
            .field("mel", &self.mel)
            .finish_non_exhaustive()
    }
}

impl WhisperAudio {
    /// A stream of interleaved audio with `channels` channels at `sample_rate` Hz.
    pub(crate) fn new(channels: u16, sample_rate: u32) -> Result<Self, LatentSyncError> {
        const { assert!(SAMPLE_RATE == Mono16k::RATE) };
        Ok(Self {
            audio: Mono16k::new(channels, sample_rate).map_err(audio_err)?,
            pcm: Vec::new(),
            mel: MelStream::new(),
        })
    }

    /// Adds the next interleaved samples (whole frames).
    pub(crate) fn push(&mut self, interleaved: &[f32]) -> Result<(), LatentSyncError> {
        self.pcm.clear();
        self.audio
            .push(interleaved, &mut self.pcm)
            .map_err(audio_err)?;
        self.mel.push(&self.pcm);
        Ok(())
    }

    /// The clip's log-mel.
    pub(crate) fn finish(mut self) -> Result<WhisperMel, LatentSyncError> {
        self.pcm.clear();
        self.audio.finish(&mut self.pcm).map_err(audio_err)?;
        self.mel.push(&self.pcm);
        Ok(self.mel.finish())
    }
}

/// infer's audio errors are all about the audio (channels, rate, partial frames, resampling).
fn audio_err(e: InferError) -> LatentSyncError {
    match e {
        InferError::Audio(m) => LatentSyncError::Audio(m),
        other => LatentSyncError::Audio(other.to_string()),
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
