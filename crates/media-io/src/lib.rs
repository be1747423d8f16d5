//! Video and audio in and out for facesync, streaming frame by frame.
//!
//! Why a crate of its own: the pipeline stages work on [`frame::Frame`]s and must not know where
//! frames come from. This crate turns files into frames and back, and nothing else; the stages
//! never depend on it.
//!
//! - **Video in** ([`VideoReader::open`]): Y4M files and folders of PNG files natively; every
//!   other container (mp4, mov, mkv, webm, …) through the `ffmpeg` program as a subprocess (raw
//!   RGB frames over a pipe, size and rate probed with `ffprobe`). Frames are decoded one at a
//!   time, never the whole file.
//! - **Video out** ([`VideoWriter::create`]): Y4M, a PNG folder, or (through `ffmpeg`) an H.264
//!   mp4/mov/mkv with an audio track muxed in. The output is written under a temporary name next
//!   to the destination and renamed only by [`VideoWriter::finish`]; a writer dropped unfinished
//!   (error, cancellation) removes its temporary file or folder, so a failed run never leaves a
//!   file that looks complete.
//! - **Audio in** ([`AudioReader`], block by block, or [`read_audio`]): WAV natively (8/16/24/32-bit PCM, 32-bit float, any rate and
//!   channel count); other formats through `ffmpeg`.
//!
//! Untrusted input: a frame size comes from a header (Y4M `W`/`H`, PNG `IHDR`, `ffprobe`), so
//! every reader refuses a frame wider or taller than [`MAX_FRAME_SIDE`] (16384 pixels, which
//! covers 8K video: 7680×4320 and 8192×4320) with [`MediaError::FrameTooLarge`], before
//! allocating anything for it. WAV buffers do not grow with the header's channel count or
//! declared length.
//!
//! Colour: Y4M is read and written as BT.601 YCbCr. Written files are full range (tagged
//! `XCOLORRANGE=FULL`); files read without that tag are taken as limited (studio) range, as
//! ffmpeg does. Chroma is subsampled by averaging 2×2 blocks and upsampled bilinearly with
//! centred (`420jpeg`) siting. `Cmono` files read as grey.
//!
//! ```no_run
//! use facesync_media_io::{VideoReader, VideoWriter, WriterOptions, ReaderOptions};
//! # fn main() -> Result<(), facesync_media_io::MediaError> {
//! let mut reader = VideoReader::open("in.y4m".as_ref(), &ReaderOptions::default())?;
//! let info = reader.info().clone();
//! let mut writer = VideoWriter::create("out.y4m".as_ref(), &info, &WriterOptions::default())?;
//! while let Some(frame) = reader.next_frame()? {
//!     writer.write_frame(&frame)?;
//! }
//! writer.finish()?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod audio;
mod ffmpeg;
mod png_seq;
mod temp;
mod y4m;

use std::path::{Path, PathBuf};

use frame::Frame;

pub use audio::{Audio, AudioReader, read_audio};

/// What went wrong reading or writing media. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The input does not exist.
    #[error("{path}: file not found")]
    NotFound {
        /// The input.
        path: PathBuf,
    },
    /// An operating-system error while reading or writing.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A Y4M stream header or frame is malformed or truncated.
    #[error("{path}: corrupt Y4M: {reason}")]
    CorruptY4m {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A PNG file cannot be decoded or encoded.
    #[error("{path}: bad PNG: {reason}")]
    Png {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A WAV file is malformed or truncated.
    #[error("{path}: bad WAV: {reason}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A header declares a frame wider or taller than [`MAX_FRAME_SIDE`]; refused before
    /// anything is allocated for it.
    #[error("{path}: frame {width}x{height} is larger than the {limit}x{limit} limit")]
    FrameTooLarge {
        /// The file (for a PNG folder, the PNG file).
        path: PathBuf,
        /// The declared width.
        width: u32,
        /// The declared height.
        height: u32,
        /// [`MAX_FRAME_SIDE`].
        limit: u32,
    },
    /// The video has no frames.
    #[error("{path}: the video has no frames")]
    NoFrames {
        /// The input.
        path: PathBuf,
    },
    /// The audio has no samples.
    #[error("{path}: the audio has no samples")]
    NoSamples {
        /// The input.
        path: PathBuf,
    },
    /// A frame's size differs from the first frame's.
    #[error(
        "{path}: frame is {actual_width}x{actual_height}, expected {width}x{height} like the first frame"
    )]
    SizeMismatch {
        /// The file holding the odd frame.
        path: PathBuf,
        /// Expected width.
        width: u32,
        /// Expected height.
        height: u32,
        /// Actual width.
        actual_width: u32,
        /// Actual height.
        actual_height: u32,
    },
    /// A helper program (`ffmpeg`, `ffprobe`) is not on `PATH`.
    #[error(
        "{path}: this format needs the `{program}` program, which is not on PATH \
         (install ffmpeg, e.g. `sudo apt-get install ffmpeg`, or use Y4M/PNG/WAV)"
    )]
    MissingProgram {
        /// The program.
        program: String,
        /// The file that needed it.
        path: PathBuf,
    },
    /// A helper program failed.
    #[error("{path}: `{program}` failed: {detail}")]
    ProgramFailed {
        /// The program.
        program: String,
        /// The file.
        path: PathBuf,
        /// Exit status and its error output.
        detail: String,
    },
    /// The frame given to a writer does not match the size it was created with.
    #[error(
        "{path}: cannot write a {actual_width}x{actual_height} frame into a {width}x{height} video"
    )]
    WrongFrameSize {
        /// The output.
        path: PathBuf,
        /// The video's width.
        width: u32,
        /// The video's height.
        height: u32,
        /// The frame's width.
        actual_width: u32,
        /// The frame's height.
        actual_height: u32,
    },
    /// Settings that cannot work (e.g. a zero frame rate).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl MediaError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            return Self::NotFound { path: path.into() };
        }
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The largest frame width and height, in pixels, that the readers accept: 16384, enough for
/// 8K video (7680×4320, 8192×4320). A Y4M, PNG or `ffprobe` header that declares a larger
/// frame is refused with [`MediaError::FrameTooLarge`] before anything is allocated for it (a
/// 16384×16384 RGB frame is 768 MiB; a corrupt header could otherwise ask for terabytes).
pub const MAX_FRAME_SIDE: u32 = 16_384;

/// Refuses a declared frame size over [`MAX_FRAME_SIDE`] (called before allocating).
pub(crate) fn check_frame_size(path: &Path, width: u32, height: u32) -> Result<(), MediaError> {
    if width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE {
        return Err(MediaError::FrameTooLarge {
            path: path.into(),
            width,
            height,
            limit: MAX_FRAME_SIDE,
        });
    }
    Ok(())
}

/// A frame rate as a fraction, e.g. `30000/1001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    /// Numerator.
    pub num: u32,
    /// Denominator (non-zero).
    pub den: u32,
}

impl Rational {
    /// `num/den`.
    pub const fn new(num: u32, den: u32) -> Self {
        Self { num, den }
    }

    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den.max(1))
    }
}

/// A frame rate that does not parse (see [`Rational`]'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame rate {0:?}: expected a positive number such as 25, 29.97 or 30000/1001")]
pub struct ParseRateError(pub String);

/// `25`, `29.97` (a decimal: 2997/100) or `30000/1001`; positive, at most 1000.
impl std::str::FromStr for Rational {
    type Err = ParseRateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseRateError(s.to_string());
        let t = s.trim();
        let r = if let Some((n, d)) = t.split_once('/') {
            let (n, d) = (n.trim().parse::<u32>(), d.trim().parse::<u32>());
            match (n, d) {
                (Ok(n), Ok(d)) => Rational::new(n, d),
                _ => return Err(bad()),
            }
        } else {
            let (int, frac) = t.split_once('.').unwrap_or((t, ""));
            if int.is_empty() && frac.is_empty()
                || !int.bytes().all(|b| b.is_ascii_digit())
                || !frac.bytes().all(|b| b.is_ascii_digit())
                || frac.len() > 6
            {
                return Err(bad());
            }
            let den = 10u32.pow(frac.len() as u32);
            let int: u32 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| bad())?
            };
            let frac: u32 = if frac.is_empty() {
                0
            } else {
                frac.parse().map_err(|_| bad())?
            };
            let num = int
                .checked_mul(den)
                .and_then(|v| v.checked_add(frac))
                .ok_or_else(bad)?;
            Rational::new(num, den)
        };
        if r.num == 0 || r.den == 0 || r.as_f64() > 1000.0 {
            return Err(bad());
        }
        Ok(r)
    }
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// What a video is: frame size, rate and (when the container says) length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: Rational,
    /// Number of frames, when known without decoding everything.
    pub frame_count: Option<u64>,
}

/// Options for [`VideoReader::open`].
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Frame rate of a PNG folder (which has none of its own). Default 25.
    pub png_fps: Rational,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            png_fps: Rational::new(25, 1),
        }
    }
}

/// A video being decoded frame by frame.
#[derive(Debug)]
pub struct VideoReader {
    inner: ReaderKind,
    path: PathBuf,
}

#[derive(Debug)]
enum ReaderKind {
    Y4m(y4m::Y4mReader),
    Png(png_seq::PngSeqReader),
    Ffmpeg(ffmpeg::FfmpegReader),
}

impl VideoReader {
    /// Opens a video: a folder of `.png` files (sorted by name), a `.y4m` file, or anything else
    /// through `ffmpeg`. Fails on a missing input, a malformed header, a frame wider or taller
    /// than [`MAX_FRAME_SIDE`] (16384 pixels; [`MediaError::FrameTooLarge`], checked before
    /// allocating), or a video known to have no frames.
    pub fn open(path: &Path, options: &ReaderOptions) -> Result<Self, MediaError> {
        let meta = std::fs::metadata(path).map_err(|e| MediaError::io(path, e))?;
        let inner = if meta.is_dir() {
            ReaderKind::Png(png_seq::PngSeqReader::open(path, options.png_fps)?)
        } else if has_extension(path, "y4m") {
            ReaderKind::Y4m(y4m::Y4mReader::open(path)?)
        } else {
            ReaderKind::Ffmpeg(ffmpeg::FfmpegReader::open(path)?)
        };
        Ok(Self {
            inner,
            path: path.into(),
        })
    }

    /// The file or folder being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size, rate and length.
    pub fn info(&self) -> &VideoInfo {
        match &self.inner {
            ReaderKind::Y4m(r) => r.info(),
            ReaderKind::Png(r) => r.info(),
            ReaderKind::Ffmpeg(r) => r.info(),
        }
    }

    /// The next frame, `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, MediaError> {
        match &mut self.inner {
            ReaderKind::Y4m(r) => r.next_frame(),
            ReaderKind::Png(r) => r.next_frame(),
            ReaderKind::Ffmpeg(r) => r.next_frame(),
        }
    }
}

/// Chroma layout of a written Y4M file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Y4mChroma {
    /// 4:2:0 (`C420jpeg`), what most tools expect. The default.
    #[default]
    C420,
    /// 4:4:4 (`C444`), no chroma loss.
    C444,
}

/// Options for [`VideoWriter::create`].
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    /// Chroma layout for Y4M output.
    pub y4m_chroma: Y4mChroma,
    /// An audio file to mux into an ffmpeg container (cut to the video's length). Ignored for
    /// Y4M and PNG output, which carry no audio.
    pub audio: Option<PathBuf>,
}

/// A video being written. Call [`finish`](Self::finish) to make it appear under its name;
/// dropping it unfinished removes everything written so far.
#[derive(Debug)]
pub struct VideoWriter {
    inner: WriterKind,
    path: PathBuf,
    width: u32,
    height: u32,
}

#[derive(Debug)]
enum WriterKind {
    Y4m(y4m::Y4mWriter),
    Png(png_seq::PngSeqWriter),
    Ffmpeg(ffmpeg::FfmpegWriter),
}

impl VideoWriter {
    /// Starts writing `path`: a `.y4m` file, a folder of PNG files (a path ending in `/` or
    /// without an extension), or any other extension (mp4, mov, mkv, …) through `ffmpeg`
    /// (H.264 `yuv420p`, AAC audio).
    pub fn create(
        path: &Path,
        info: &VideoInfo,
        options: &WriterOptions,
    ) -> Result<Self, MediaError> {
        if info.fps.num == 0 || info.fps.den == 0 {
            return Err(MediaError::Invalid {
                path: path.into(),
                reason: format!("frame rate {} is not usable", info.fps),
            });
        }
        let is_dir = path.as_os_str().to_string_lossy().ends_with('/')
            || path.extension().is_none()
            || path.is_dir();
        let inner = if is_dir {
            WriterKind::Png(png_seq::PngSeqWriter::create(path)?)
        } else if has_extension(path, "y4m") {
            WriterKind::Y4m(y4m::Y4mWriter::create(path, info, options.y4m_chroma)?)
        } else {
            WriterKind::Ffmpeg(ffmpeg::FfmpegWriter::create(
                path,
                info,
                options.audio.as_deref(),
            )?)
        };
        Ok(Self {
            inner,
            path: path.into(),
            width: info.width,
            height: info.height,
        })
    }

    /// Appends a frame (same size as the video).
    pub fn write_frame(&mut self, frame: &Frame) -> Result<(), MediaError> {
        if frame.width() != self.width || frame.height() != self.height {
            return Err(MediaError::WrongFrameSize {
                path: self.path.clone(),
                width: self.width,
                height: self.height,
                actual_width: frame.width(),
                actual_height: frame.height(),
            });
        }
        match &mut self.inner {
            WriterKind::Y4m(w) => w.write_frame(frame),
            WriterKind::Png(w) => w.write_frame(frame),
            WriterKind::Ffmpeg(w) => w.write_frame(frame),
        }
    }

    /// Where the output appears once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Completes the file and renames it to its final name.
    pub fn finish(self) -> Result<PathBuf, MediaError> {
        match self.inner {
            WriterKind::Y4m(w) => w.finish(),
            WriterKind::Png(w) => w.finish(),
            WriterKind::Ffmpeg(w) => w.finish(),
        }?;
        Ok(self.path)
    }
}

pub(crate) fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
}

#[cfg(test)]
mod rate_tests {
    use super::Rational;

    #[test]
    fn frame_rates_parse_as_fractions() {
        let ok = |s: &str, n, d| assert_eq!(s.parse::<Rational>(), Ok(Rational::new(n, d)), "{s}");
        ok("25", 25, 1);
        ok("29.97", 2997, 100);
        ok("30000/1001", 30000, 1001);
        ok(" 60 ", 60, 1);
        ok("23.976", 23976, 1000);
        for bad in [
            "", "0", "-25", "25fps", "1/0", "0/1", "abc", "1.2.3", "2000", ".",
        ] {
            let e = bad.parse::<Rational>().unwrap_err();
            assert!(e.to_string().contains("frame rate"), "{bad}: {e}");
        }
    }
}
