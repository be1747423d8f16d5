//! Frames in numpy buffers: float `[B, H, W, C]` in 0..1 (ComfyUI's IMAGE) to RGB8 frames on
//! the way in, RGB8 frames to float `[N, H, W, 3]` on the way out, one frame at a time on the
//! pipeline's own threads (decoding and encoding), never on the thread that holds the GIL.

use frame::Frame;

/// Frames read from a borrowed float buffer, `channels` per pixel (1: grey, 3: RGB, 4: RGBA,
/// alpha dropped), values clamped to 0..1 and rounded to 8 bits.
#[derive(Debug)]
pub(crate) struct FloatFrames<'a> {
    data: &'a [f32],
    width: u32,
    height: u32,
    channels: usize,
    next: usize,
}

impl<'a> FloatFrames<'a> {
    /// `data` holds `data.len() / (width * height * channels)` whole frames.
    pub(crate) fn new(data: &'a [f32], width: u32, height: u32, channels: usize) -> Self {
        debug_assert!(matches!(channels, 1 | 3 | 4));
        Self {
            data,
            width,
            height,
            channels,
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

    /// The next frame as RGB8, `None` after the last.
    pub(crate) fn next_frame(&mut self) -> Option<Frame> {
        let len = self.frame_len();
        let src = self.data.get(self.next * len..(self.next + 1) * len)?;
        self.next += 1;
        let mut rgb = vec![0u8; self.width as usize * self.height as usize * 3];
        to_rgb8(src, self.channels, &mut rgb);
        Some(Frame::new(self.width, self.height, rgb).expect("sized for the frame"))
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

/// Frames written into a borrowed float buffer `[N, H, W, 3]`, in order.
#[derive(Debug)]
pub(crate) struct FloatOutput<'a> {
    data: &'a mut [f32],
    frame_len: usize,
    written: usize,
}

impl<'a> FloatOutput<'a> {
    pub(crate) fn new(data: &'a mut [f32], width: u32, height: u32) -> Self {
        Self {
            data,
            frame_len: width as usize * height as usize * 3,
            written: 0,
        }
    }

    /// Frames written so far.
    pub(crate) fn written(&self) -> usize {
        self.written
    }

    /// Converts `frame` into the next slot; `false` when the buffer is full or the frame's
    /// size differs.
    pub(crate) fn write_frame(&mut self, frame: &Frame) -> bool {
        let start = self.written * self.frame_len;
        let Some(dst) = self.data.get_mut(start..start + self.frame_len) else {
            return false;
        };
        if frame.data().len() != dst.len() {
            return false;
        }
        to_float(frame.data(), dst);
        self.written += 1;
        true
    }
}
