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

/// Samples per block in [`read_audio`].
const BLOCK_SAMPLES: usize = 65_536;

/// Reads a whole audio file: `.wav` natively (PCM 8/16/24/32-bit integer or 32-bit float), any
/// other format through `ffmpeg`. Fails on a missing, truncated or corrupt file, or one without
/// samples. For long files prefer [`AudioReader`], which holds one block at a time.
pub fn read_audio(path: &Path) -> Result<Audio, MediaError> {
    let mut reader = AudioReader::open(path)?;
    let mut samples = Vec::new();
    // About 64 Ki samples whatever the header's channel count (up to 65535): a block sized
    // `frames × channels` would let a corrupt header ask for gigabytes. At least one frame.
    let channels = usize::from(reader.channels());
    let mut block = vec![0.0f32; (BLOCK_SAMPLES / channels).max(1) * channels];
    loop {
        let n = reader.read(&mut block)?;
        if n == 0 {
            break;
        }
        samples.extend_from_slice(&block[..n]);
    }
    Ok(Audio {
        samples,
        channels: reader.channels(),
        sample_rate: reader.sample_rate(),
    })
}

/// Streams an audio file block by block, so that memory does not grow with its length: `.wav`
/// natively, any other format through `ffmpeg`. The same checks as [`read_audio`] apply, at
/// the end of the stream: a truncated file or one without samples is an error from the
/// [`AudioReader::read`] that reaches the end.
pub struct AudioReader {
    path: PathBuf,
    channels: u16,
    sample_rate: u32,
    source: Source,
    /// Samples returned so far.
    read: u64,
}

enum Source {
    Wav {
        reader: hound::WavReader<std::io::BufReader<std::fs::File>>,
        /// `None`: 32-bit float; `Some(bits)`: integer PCM.
        int_bits: Option<u16>,
        /// Samples the header declares.
        declared: u64,
    },
    Ffmpeg(crate::ffmpeg::FfmpegAudio),
}

impl std::fmt::Debug for AudioReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioReader")
            .field("path", &self.path)
            .field("channels", &self.channels)
            .field("sample_rate", &self.sample_rate)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl AudioReader {
    /// Opens `path` and reads its header (WAV) or probes it (`ffprobe`).
    pub fn open(path: &Path) -> Result<Self, MediaError> {
        std::fs::metadata(path).map_err(|e| MediaError::io(path, e))?;
        if has_extension(path, "wav") {
            let reader = hound::WavReader::open(path).map_err(|e| wav_err(path, e))?;
            let spec = reader.spec();
            let int_bits = match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, 32) => None,
                (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => Some(bits),
                (format, bits) => {
                    return Err(wav_err(
                        path,
                        format!("unsupported sample format {format:?} with {bits} bits"),
                    ));
                }
            };
            if spec.channels == 0 {
                return Err(wav_err(path, "0 channels"));
            }
            return Ok(Self {
                path: path.into(),
                channels: spec.channels,
                sample_rate: spec.sample_rate,
                source: Source::Wav {
                    declared: u64::from(reader.len()),
                    reader,
                    int_bits,
                },
                read: 0,
            });
        }
        let ffmpeg = crate::ffmpeg::FfmpegAudio::open(path)?;
        Ok(Self {
            path: path.into(),
            channels: ffmpeg.channels,
            sample_rate: ffmpeg.sample_rate,
            source: Source::Ffmpeg(ffmpeg),
            read: 0,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Channels per frame.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Frames per second.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Fills the start of `buf` with the next interleaved samples, whole frames only (up to
    /// `buf.len()` rounded down to a multiple of the channel count) and returns how many; 0 at
    /// the end of the stream (a `buf` shorter than one frame reads nothing). Reaching the end of
    /// a truncated file, or of one without samples, is an error naming the file.
    pub fn read(&mut self, buf: &mut [f32]) -> Result<usize, MediaError> {
        let want = buf.len() / usize::from(self.channels) * usize::from(self.channels);
        let path = self.path.as_path();
        let n = match &mut self.source {
            Source::Wav {
                reader,
                int_bits,
                declared,
            } => {
                let mut n = 0;
                match *int_bits {
                    None => {
                        for s in reader.samples::<f32>().take(want) {
                            buf[n] = s.map_err(|e| truncated(path, e))?;
                            n += 1;
                        }
                    }
                    Some(bits) => {
                        let scale = 1.0 / (1u64 << (bits - 1)) as f32;
                        for s in reader.samples::<i32>().take(want) {
                            buf[n] = s.map_err(|e| truncated(path, e))? as f32 * scale;
                            n += 1;
                        }
                    }
                }
                if n < want && self.read + n as u64 != *declared {
                    return Err(wav_err(
                        path,
                        format!(
                            "truncated: {} of {declared} samples present",
                            self.read + n as u64
                        ),
                    ));
                }
                n
            }
            Source::Ffmpeg(ffmpeg) => ffmpeg.read(&mut buf[..want])?,
        };
        if n == 0 && self.read == 0 && want > 0 {
            return Err(MediaError::NoSamples {
                path: self.path.clone(),
            });
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn wav_err(path: &Path, e: impl std::fmt::Display) -> MediaError {
    MediaError::Wav {
        path: PathBuf::from(path),
        reason: e.to_string(),
    }
}

fn truncated(path: &Path, e: hound::Error) -> MediaError {
    wav_err(path, format!("truncated or corrupt sample data ({e})"))
}
