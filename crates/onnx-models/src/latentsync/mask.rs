//! LatentSync's fixed mouth mask (`assets/latentsync/mask.png`, from bytedance/LatentSync,
//! Apache-2.0): 1 = keep the original pixel, 0 = regenerate; at 256×256 as the export wants.

/// The mask's size, the face size of the 256 export.
pub(crate) const SIZE: usize = 256;
/// The latent grid the UNet sees (SIZE / 8).
pub(crate) const LATENT: usize = SIZE / 8;

static PNG: &[u8] = include_bytes!("../../assets/latentsync/mask.png");

/// The mask at 256×256 (values 0 or 1, from the red channel / 255) and its nearest-resized
/// 32×32 latent version (OpenCV's `INTER_NEAREST`: pixel `(8x, 8y)`).
#[derive(Debug, Clone)]
pub(crate) struct MouthMask {
    pub(crate) pixels: Vec<f32>,
    pub(crate) latent: Vec<f32>,
}

impl MouthMask {
    pub(crate) fn load() -> Self {
        let decoder = png::Decoder::new(std::io::Cursor::new(PNG));
        let mut reader = decoder
            .read_info()
            .expect("the embedded mask.png is a valid PNG");
        let mut buf = vec![0u8; reader.output_buffer_size().expect("mask.png size")];
        let info = reader
            .next_frame(&mut buf)
            .expect("the embedded mask.png decodes");
        assert_eq!(
            (info.width as usize, info.height as usize),
            (SIZE, SIZE),
            "mask.png is 256×256"
        );
        let channels = info.color_type.samples();
        let pixels: Vec<f32> = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .map(|p| f32::from(p[0]) / 255.0)
            .collect();
        let latent = (0..LATENT * LATENT)
            .map(|i| pixels[(i / LATENT) * 8 * SIZE + (i % LATENT) * 8])
            .collect();
        Self { pixels, latent }
    }

    /// The regenerated region as the scheduler's mask (1 = regenerated).
    pub(crate) fn regenerated(&self) -> Vec<u8> {
        self.pixels.iter().map(|&m| u8::from(m < 0.5)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_regenerates_the_lower_face() {
        let m = MouthMask::load();
        assert_eq!(m.pixels.len(), SIZE * SIZE);
        let at = |x: usize, y: usize| m.pixels[y * SIZE + x];
        assert_eq!(at(128, 50), 1.0, "forehead kept");
        assert_eq!(at(128, 200), 0.0, "mouth regenerated");
        assert_eq!(at(3, 200), 1.0, "left edge kept");
        // The reference notes: regenerated rows 95–242, columns 9–247 (the nose strip kept).
        let regen = m.regenerated();
        let rows: Vec<usize> = (0..SIZE)
            .filter(|&y| (0..SIZE).any(|x| regen[y * SIZE + x] == 1))
            .collect();
        assert_eq!((rows[0], *rows.last().unwrap()), (95, 242));
        let cols: Vec<usize> = (0..SIZE)
            .filter(|&x| (0..SIZE).any(|y| regen[y * SIZE + x] == 1))
            .collect();
        assert_eq!((cols[0], *cols.last().unwrap()), (9, 247));
        assert!(m.pixels.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_eq!(m.latent[(200 / 8) * LATENT + 16], 0.0);
        assert_eq!(m.latent[(48 / 8) * LATENT + 16], 1.0);
    }
}
