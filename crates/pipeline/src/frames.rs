//! Where the frames of a run come from and where they go.
//!
//! [`run_with`](crate::run_with) reads from any [`FrameSource`] and writes to any
//! [`FrameSink`], so an embedder that holds its frames in memory (a numpy array in Python, a
//! decoder of its own) streams them through the stages without a temporary file. Both traits
//! are object-safe (`&mut dyn FrameSource`, `Box<dyn FrameSink>`) and `Send`: the pipeline
//! reads on its decoding thread and writes on its encoding thread.
//!
//! Implemented here for media-io's [`VideoReader`] and [`VideoWriter`] (what the path-based
//! [`run`](crate::run) uses) and for raw RGB8 memory ([`RawSource`], [`RawSink`]).

use std::path::PathBuf;

use frame::Frame;
use media_io::{MediaError, Rational, VideoInfo, VideoReader, VideoWriter};

use crate::PipelineError;

/// Frames in, one at a time, in display order.
///
/// The pipeline hands [`read_frame`](Self::read_frame) a buffer of the video's size, most of
/// the time one whose frame has already been written out (buffers are recycled from the
/// encoder), so a source that copies into it allocates nothing per frame; a source that
/// produces frames of its own may replace it instead.
pub trait FrameSource: Send {
    /// Size and rate of the frames, and their count when known (`None` for a stream whose end
    /// is found by reading). Called once, before the first frame.
    fn info(&self) -> VideoInfo;

    /// What the frames are, for error messages: a path, or a short description such as
    /// `frames from Python`.
    fn name(&self) -> String;

    /// Puts the next frame into `frame` (which is `info().width` × `info().height`) and
    /// returns `true`, or returns `false` at the end. The frame must keep the video's size:
    /// the pipeline rejects one that does not.
    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, PipelineError>;
}

/// Frames out, in display order. Nothing may appear as a finished output before
/// [`finish`](Self::finish): the pipeline calls it only once every stage has succeeded, and
/// drops the sink unfinished on an error or a cancellation, which must discard what was
/// written (a file sink removes its temporary file).
pub trait FrameSink: Send {
    /// Appends a frame (the video's size).
    fn write_frame(&mut self, frame: &Frame) -> Result<(), PipelineError>;

    /// Commits the output: every frame was written and every stage succeeded.
    fn finish(self: Box<Self>) -> Result<(), PipelineError>;
}

impl FrameSource for VideoReader {
    fn info(&self) -> VideoInfo {
        VideoReader::info(self).clone()
    }

    fn name(&self) -> String {
        self.path().display().to_string()
    }

    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, PipelineError> {
        match self.next_frame()? {
            Some(f) => {
                *frame = f;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl FrameSink for VideoWriter {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), PipelineError> {
        Ok(VideoWriter::write_frame(self, frame)?)
    }

    fn finish(self: Box<Self>) -> Result<(), PipelineError> {
        VideoWriter::finish(*self)?;
        Ok(())
    }
}

/// Frames from raw RGB8 memory: `width * height * 3` bytes per frame, row-major, frame after
/// frame (a contiguous `uint8` array of shape `(frames, height, width, 3)`).
#[derive(Debug)]
pub struct RawSource<'a> {
    data: &'a [u8],
    info: VideoInfo,
    name: String,
    next: usize,
}

impl<'a> RawSource<'a> {
    /// Wraps `data`; `name` is what error messages call it. Fails unless `data` holds a whole,
    /// non-zero number of `width` × `height` frames and `fps` is usable.
    pub fn new(
        data: &'a [u8],
        width: u32,
        height: u32,
        fps: Rational,
        name: impl Into<String>,
    ) -> Result<Self, PipelineError> {
        let name = name.into();
        let frame_len = width as usize * height as usize * 3;
        if frame_len == 0 || data.is_empty() || !data.len().is_multiple_of(frame_len) {
            return Err(PipelineError::Frames {
                name,
                message: format!(
                    "{} bytes is not a whole, non-zero number of {width}x{height} RGB8 frames",
                    data.len()
                ),
            });
        }
        if fps.num == 0 || fps.den == 0 {
            return Err(PipelineError::Frames {
                name,
                message: format!("frame rate {fps} is not usable"),
            });
        }
        Ok(Self {
            info: VideoInfo {
                width,
                height,
                fps,
                frame_count: Some((data.len() / frame_len) as u64),
            },
            data,
            name,
            next: 0,
        })
    }
}

impl FrameSource for RawSource<'_> {
    fn info(&self) -> VideoInfo {
        self.info.clone()
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, PipelineError> {
        let len = frame.data().len();
        let Some(bytes) = self.data.get(self.next..self.next + len) else {
            return Ok(false);
        };
        frame.data_mut().copy_from_slice(bytes);
        self.next += len;
        Ok(true)
    }
}

/// Frames into raw RGB8 memory, appended to a caller's `Vec<u8>` (the layout of
/// [`RawSource`]). Dropped unfinished, it truncates the vector back to its length before the
/// run, so a failed run leaves nothing behind there either.
#[derive(Debug)]
pub struct RawSink<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    finished: bool,
}

impl<'a> RawSink<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            finished: false,
        }
    }
}

impl FrameSink for RawSink<'_> {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), PipelineError> {
        self.out.extend_from_slice(frame.data());
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), PipelineError> {
        self.finished = true;
        Ok(())
    }
}

impl Drop for RawSink<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

/// The error for a source frame whose size is not the video's.
pub(crate) fn size_mismatch(name: String, info: &VideoInfo, frame: &Frame) -> PipelineError {
    MediaError::SizeMismatch {
        path: PathBuf::from(name),
        width: info.width,
        height: info.height,
        actual_width: frame.width(),
        actual_height: frame.height(),
    }
    .into()
}
