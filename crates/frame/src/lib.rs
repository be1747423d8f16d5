//! The two value types every facesync stage shares: an RGB8 [`Frame`] and a 2-D [`Affine2`].
//!
//! Why a crate of its own: the stages (`face-proc`, `infer`, `restore`) and media I/O must agree
//! on what an image is without depending on each other, on the GPU crate or on a video library.
//! So this crate has no dependency beyond `thiserror`, and holds nothing but plain data and the
//! small amount of geometry the stages exchange (the face-alignment transform).
//!
//! Conventions: pixels are tightly packed RGB8, row-major, top row first. Coordinates are pixel
//! centres: pixel `(x, y)` covers `[x - 0.5, x + 0.5)` and sits at the point `(x, y)`, the same
//! convention as OpenCV's `warpAffine`.
//!
//! ```
//! use facesync_frame::{Affine2, Frame};
//! let mut f = Frame::filled(4, 2, [10, 20, 30]);
//! f.put_pixel(3, 1, [255, 0, 0]);
//! assert_eq!(f.pixel(3, 1), [255, 0, 0]);
//! let t = Affine2::similarity(2.0, 0.0, 1.0, -1.0);
//! let back = t.inverse().unwrap();
//! let p = back.apply(t.apply([3.0, 4.0]));
//! assert!((p[0] - 3.0).abs() < 1e-12 && (p[1] - 4.0).abs() < 1e-12);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// OpenCV's (`cv2`'s) warp, polygon fill, Gaussian blur and resize arithmetic, re-implemented.
pub mod cv;

/// Why a [`Frame`] could not be built from the given parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The buffer length is not `width * height * 3`.
    #[error("frame data has {actual} bytes, expected {expected} for {width}x{height} RGB8")]
    WrongLength {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `width * height * 3`.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// Width or height is zero.
    #[error("frame size {width}x{height} is empty")]
    Empty {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
}

/// An RGB8 image: `width * height` pixels of three bytes, row-major, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Frame {
    /// Wraps `data` (RGB8, row-major) as a `width` × `height` frame.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(FrameError::WrongLength {
                width,
                height,
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// A frame of one colour. Panics if a side is zero.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Self {
        assert!(
            width > 0 && height > 0,
            "frame size {width}x{height} is empty"
        );
        let data = rgb
            .iter()
            .copied()
            .cycle()
            .take(width as usize * height as usize * 3)
            .collect();
        Self {
            width,
            height,
            data,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, RGB8, row-major.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The pixels, mutable; the length cannot change.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives the pixel buffer back.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The pixel at `(x, y)`. Panics outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = self.index(x, y);
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the pixel at `(x, y)`. Panics outside the frame.
    pub fn put_pixel(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        let i = self.index(x, y);
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    fn index(&self, x: u32, y: u32) -> usize {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) outside {}x{} frame",
            self.width,
            self.height
        );
        (y as usize * self.width as usize + x as usize) * 3
    }
}

/// A 2-D affine map `p ↦ A·p + t`, stored as the 2×3 matrix `[[a, b, tx], [c, d, ty]]`
/// (the layout of OpenCV's `warpAffine`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine2 {
    /// Row-major 2×3 matrix.
    pub m: [[f64; 3]; 2],
}

impl Affine2 {
    /// The identity map.
    pub const IDENTITY: Self = Self {
        m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    };

    /// A similarity: rotate by `angle` radians (counter-clockwise in a y-up frame, i.e. clockwise
    /// on screen), scale by `scale`, then translate by `(tx, ty)`.
    pub fn similarity(scale: f64, angle: f64, tx: f64, ty: f64) -> Self {
        let (s, c) = angle.sin_cos();
        Self {
            m: [[scale * c, -scale * s, tx], [scale * s, scale * c, ty]],
        }
    }

    /// Maps a point.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let m = &self.m;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    /// The determinant of the linear part.
    pub fn det(&self) -> f64 {
        self.m[0][0] * self.m[1][1] - self.m[0][1] * self.m[1][0]
    }

    /// The inverse map, or `None` when the linear part is singular (|det| < 1e-12).
    pub fn inverse(&self) -> Option<Self> {
        let det = self.det();
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        let [[a, b, tx], [c, d, ty]] = self.m;
        let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
        Some(Self {
            m: [
                [ia, ib, -(ia * tx + ib * ty)],
                [ic, id, -(ic * tx + id * ty)],
            ],
        })
    }

    /// `self` after `first`: the map `p ↦ self(first(p))`.
    pub fn after(&self, first: &Self) -> Self {
        let a = &self.m;
        let b = &first.m;
        let mut m = [[0.0; 3]; 2];
        for (r, row) in m.iter_mut().enumerate() {
            for (col, out) in row.iter_mut().enumerate() {
                *out = a[r][0] * b[0][col] + a[r][1] * b[1][col];
            }
            row[2] += a[r][2];
        }
        Self { m }
    }

    /// The uniform scale of a similarity (`sqrt(|det|)`).
    pub fn scale(&self) -> f64 {
        self.det().abs().sqrt()
    }

    /// The matrix as `f32`, row-major, for upload to a shader.
    pub fn to_f32(&self) -> [f32; 6] {
        let m = &self.m;
        [
            m[0][0] as f32,
            m[0][1] as f32,
            m[0][2] as f32,
            m[1][0] as f32,
            m[1][1] as f32,
            m[1][2] as f32,
        ]
    }
}

impl Default for Affine2 {
    fn default() -> Self {
        Self::IDENTITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_rejects_wrong_length_and_empty() {
        assert_eq!(
            Frame::new(2, 2, vec![0; 11]),
            Err(FrameError::WrongLength {
                width: 2,
                height: 2,
                expected: 12,
                actual: 11
            })
        );
        assert_eq!(
            Frame::new(0, 2, vec![]),
            Err(FrameError::Empty {
                width: 0,
                height: 2
            })
        );
        assert!(Frame::new(2, 2, vec![0; 12]).is_ok());
    }

    #[test]
    fn composition_order() {
        let shift = Affine2::similarity(1.0, 0.0, 5.0, 0.0);
        let double = Affine2::similarity(2.0, 0.0, 0.0, 0.0);
        // double after shift: (1 + 5) * 2
        assert_eq!(double.after(&shift).apply([1.0, 0.0]), [12.0, 0.0]);
        assert_eq!(shift.after(&double).apply([1.0, 0.0]), [7.0, 0.0]);
    }

    proptest! {
        #[test]
        fn inverse_round_trips(
            scale in 0.05f64..20.0, angle in -3.2f64..3.2,
            tx in -1e3f64..1e3, ty in -1e3f64..1e3,
            x in -1e3f64..1e3, y in -1e3f64..1e3,
        ) {
            let t = Affine2::similarity(scale, angle, tx, ty);
            let p = t.inverse().unwrap().apply(t.apply([x, y]));
            prop_assert!((p[0] - x).abs() < 1e-6 && (p[1] - y).abs() < 1e-6);
            prop_assert!((t.scale() - scale).abs() < 1e-9 * scale.max(1.0));
            let id = t.inverse().unwrap().after(&t);
            for r in 0..2 { for c in 0..3 {
                prop_assert!((id.m[r][c] - Affine2::IDENTITY.m[r][c]).abs() < 1e-6);
            }}
        }
    }
}
