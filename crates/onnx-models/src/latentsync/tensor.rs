//! Tensors in the element type a graph input wants (float16 or float32), written from and read
//! into f32 with `half`'s vectorised slice conversions.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// The floating-point element types the export's tensors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Float {
    F16,
    F32,
}

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F16 => "float16",
            Self::F32 => "float32",
        })
    }
}

/// A dense buffer of one of the [`Float`] types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Buffer {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl Buffer {
    /// `len` zeros of type `ty`.
    pub(crate) fn zeros(ty: Float, len: usize) -> Self {
        match ty {
            Float::F16 => Self::F16(vec![f16::ZERO; len]),
            Float::F32 => Self::F32(vec![0.0; len]),
        }
    }

    /// The buffer of `ty` holding `values`.
    pub(crate) fn from_f32(ty: Float, values: &[f32]) -> Self {
        let mut b = Self::zeros(ty, values.len());
        b.write(0, values);
        b
    }

    /// Writes `values` at `offset`.
    pub(crate) fn write(&mut self, offset: usize, values: &[f32]) {
        match self {
            Self::F16(v) => v[offset..offset + values.len()].convert_from_f32_slice(values),
            Self::F32(v) => v[offset..offset + values.len()].copy_from_slice(values),
        }
    }
}

/// Reads f16 values into f32.
pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    src.convert_to_f32_slice(dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_rounds_to_nearest() {
        let mut b = Buffer::zeros(Float::F16, 4);
        b.write(1, &[1.0, 0.1, 65504.0]);
        let Buffer::F16(v) = &b else { unreachable!() };
        let mut back = [0.0f32; 4];
        f16_to_f32(v, &mut back);
        assert_eq!(back[0], 0.0);
        assert_eq!(back[1], 1.0);
        assert!((back[2] - 0.1).abs() < 1e-4, "{}", back[2]);
        assert_eq!(back[3], 65504.0);
    }
}
