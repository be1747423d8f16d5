//! Audio input: WAV with `hound`, everything else through `ffmpeg`.

use std::path::{Path, PathBuf};

use crate::{MediaError, has_extension};

/// Decoded audio: interleaved samples in `[-1, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Interleaved samples (`frames × channels`).
    pub samples: Vec<f32>,
    /// Channels per frame.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
}

impl Audio {
    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        let frames = self.samples.len() / usize::from(self.channels.max(1));
        frames as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The channels averaged to one.
    pub fn to_mono(&self) -> Vec<f32> {
        let c = usize::from(self.channels.max(1));
        self.samples
            .chunks_exact(c)
            .map(|f| f.iter().sum::<f32>() / c as f32)
            .collect()
    }
}

/// Reads a whole audio file: `.wav` natively (PCM 8/16/24/32-bit integer or 32-bit float), any
/// other format through `ffmpeg`. Fails on a missing, truncated or corrupt file, or one without
/// samples.
pub fn read_audio(path: &Path) -> Result<Audio, MediaError> {
    std::fs::metadata(path).map_err(|e| MediaError::io(path, e))?;
    let audio = if has_extension(path, "wav") {
        read_wav(path)?
    } else {
        let (samples, channels, sample_rate) = crate::ffmpeg::read_audio(path)?;
        Audio {
            samples,
            channels,
            sample_rate,
        }
    };
    if audio.samples.is_empty() {
        return Err(MediaError::NoSamples { path: path.into() });
    }
    Ok(audio)
}

fn wav_err(path: &Path, e: impl std::fmt::Display) -> MediaError {
    MediaError::Wav {
        path: PathBuf::from(path),
        reason: e.to_string(),
    }
}

fn read_wav(path: &Path) -> Result<Audio, MediaError> {
    let reader = hound::WavReader::open(path).map_err(|e| wav_err(path, e))?;
    let spec = reader.spec();
    let declared = reader.len() as usize;
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| truncated(path, e))?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| truncated(path, e))?
        }
        (format, bits) => {
            return Err(wav_err(
                path,
                format!("unsupported sample format {format:?} with {bits} bits"),
            ));
        }
    };
    if samples.len() != declared {
        return Err(wav_err(
            path,
            format!("truncated: {} of {declared} samples present", samples.len()),
        ));
    }
    Ok(Audio {
        samples,
        channels: spec.channels,
        sample_rate: spec.sample_rate,
    })
}

fn truncated(path: &Path, e: hound::Error) -> MediaError {
    wav_err(path, format!("truncated or corrupt sample data ({e})"))
}
