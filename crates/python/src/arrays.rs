//! Frames in numpy buffers: float `[B, H, W, C]` in 0..1 (ComfyUI's IMAGE) to RGB8 frames on
//! the way in, RGB8 frames to float `[N, H, W, 3]` on the way out, one frame at a time on the
//! pipeline's own threads (decoding and encoding), never on the thread that holds the GIL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use frame::Frame;
use pipeline::media_io::{Rational, VideoInfo};
use pipeline::{FrameSink, FrameSource, PipelineError};

/// How the frames are named in errors.
const SOURCE_NAME: &str = "frames (the IMAGE batch)";
const SINK_NAME: &str = "the result batch";

/// Frames read from a borrowed float buffer, `channels` per pixel (1: grey, 3: RGB, 4: RGBA,
/// alpha dropped), values clamped to 0..1 and rounded to 8 bits.
#[derive(Debug)]
pub(crate) struct FloatFrames<'a> {
    data: &'a [f32],
    width: u32,
    height: u32,
    channels: usize,
    fps: Rational,
    next: usize,
}

impl<'a> FloatFrames<'a> {
    /// `data` holds `data.len() / (width * height * channels)` whole frames.
    pub(crate) fn new(
        data: &'a [f32],
        width: u32,
        height: u32,
        channels: usize,
        fps: Rational,
    ) -> Self {
        debug_assert!(matches!(channels, 1 | 3 | 4));
        Self {
            data,
            width,
            height,
            channels,
            fps,
            next: 0,
        }
    }

    fn frame_len(&self) -> usize {
        self.width as usize * self.height as usize * self.channels
    }

    /// Frames in the buffer.
    pub(crate) fn count(&self) -> usize {
        self.data.len() / self.frame_len()
    }
}

impl FrameSource for FloatFrames<'_> {
    fn info(&self) -> VideoInfo {
        VideoInfo {
            width: self.width,
            height: self.height,
            fps: self.fps,
            frame_count: Some(self.count() as u64),
        }
    }

    fn name(&self) -> String {
        SOURCE_NAME.into()
    }

    /// Converts the next frame into `frame` (reusing its buffer when it has the size).
    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, PipelineError> {
        let len = self.frame_len();
        let Some(src) = self.data.get(self.next * len..(self.next + 1) * len) else {
            return Ok(false);
        };
        self.next += 1;
        if frame.width() != self.width || frame.height() != self.height {
            *frame = Frame::filled(self.width, self.height, [0, 0, 0]);
        }
        to_rgb8(src, self.channels, frame.data_mut());
        Ok(true)
    }
}

/// One 8-bit value from a float in 0..1 (NaN reads as 0).
fn to_u8(value: f32) -> u8 {
    // `as` saturates and maps NaN to 0.
    (value.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

/// `src` (pixels of `channels` floats) as RGB8 into `dst`.
pub(crate) fn to_rgb8(src: &[f32], channels: usize, dst: &mut [u8]) {
    match channels {
        3 => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = to_u8(*s);
            }
        }
        1 => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src) {
                d.fill(to_u8(*s));
            }
        }
        _ => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(channels)) {
                for (d, s) in d.iter_mut().zip(s) {
                    *d = to_u8(*s);
                }
            }
        }
    }
}

/// RGB8 values as floats in 0..1.
pub(crate) fn to_float(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from(*s) * (1.0 / 255.0);
    }
}

/// Frames written into a borrowed float buffer `[N, H, W, 3]`, in order. The buffer is the
/// caller's result, returned only when the run succeeded, so there is nothing to discard.
#[derive(Debug)]
pub(crate) struct FloatOutput<'a> {
    data: &'a mut [f32],
    frame_len: usize,
    written: Arc<AtomicUsize>,
}

impl<'a> FloatOutput<'a> {
    pub(crate) fn new(data: &'a mut [f32], width: u32, height: u32) -> Self {
        Self {
            data,
            frame_len: width as usize * height as usize * 3,
            written: Arc::default(),
        }
    }

    /// Frames written, readable after the sink has gone into the pipeline.
    pub(crate) fn counter(&self) -> Written {
        Written(Arc::clone(&self.written))
    }
}

/// The count of frames a [`FloatOutput`] wrote.
#[derive(Debug)]
pub(crate) struct Written(Arc<AtomicUsize>);

impl Written {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl FrameSink for FloatOutput<'_> {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), PipelineError> {
        let n = self.written.load(Ordering::Relaxed);
        let start = n * self.frame_len;
        let Some(dst) = self.data.get_mut(start..start + self.frame_len) else {
            return Err(PipelineError::Frames {
                name: SINK_NAME.into(),
                message: format!("room for {n} frames, got more"),
            });
        };
        if frame.data().len() != dst.len() {
            return Err(PipelineError::Frames {
                name: SINK_NAME.into(),
                message: format!("a {}x{} frame does not fit", frame.width(), frame.height()),
            });
        }
        to_float(frame.data(), dst);
        self.written.store(n + 1, Ordering::Release);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), PipelineError> {
        Ok(())
    }
}
