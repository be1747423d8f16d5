//! The VAE's latent sampling and scaling, and the pixel conversions around the VAE.

/// Stable Diffusion's VAE scaling factor (LatentSync 1.5; shift 0).
pub(crate) const SCALING: f32 = 0.18215;
/// Latent channels.
pub(crate) const LATENT_CHANNELS: usize = 4;

/// Samples the encoder's `moments` (`[F, 8, h, w]`: mean ‖ log-variance) into scaled latents
/// laid out `[4, F, h, w]` (the UNet's channel-then-frame order):
/// `(mean + exp(0.5 · clip(logvar, −30, 20)) · ε) · 0.18215`, with `eps` laid out like the
/// mean (`[F, 4, h, w]`, as the reference draws it).
pub(crate) fn sample_latents(
    moments: &[f32],
    frames: usize,
    hw: usize,
    eps: &[f32],
    out: &mut [f32],
) {
    let c = LATENT_CHANNELS;
    assert_eq!(moments.len(), frames * 2 * c * hw, "moments size");
    assert_eq!(eps.len(), frames * c * hw, "noise size");
    assert_eq!(out.len(), frames * c * hw, "latents size");
    for f in 0..frames {
        for ch in 0..c {
            let mean = &moments[(f * 2 * c + ch) * hw..][..hw];
            let logvar = &moments[(f * 2 * c + c + ch) * hw..][..hw];
            let e = &eps[(f * c + ch) * hw..][..hw];
            let o = &mut out[(ch * frames + f) * hw..][..hw];
            for i in 0..hw {
                let std = (0.5 * logvar[i].clamp(-30.0, 20.0)).exp();
                o[i] = (mean[i] + std * e[i]) * SCALING;
            }
        }
    }
}

/// An RGB8 pixel value → the VAE's [−1, 1].
pub(crate) fn to_unit(v: u8) -> f32 {
    f32::from(v) / 127.5 - 1.0
}

/// The VAE's [−1, 1] → RGB8: `(x / 2 + 0.5)` clamped to [0, 1], × 255, rounded (the reference
/// truncates; rounding keeps the kept pixels exactly as they were).
pub(crate) fn from_unit(x: f32) -> u8 {
    ((x * 0.5 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latents_are_mean_plus_clipped_std_times_eps_scaled() {
        // One frame, hw = 2: channel 0 mean 1, logvar 50 (clipped to 20), channel 1 logvar −40
        // (clipped to −30); channels 2, 3 zero.
        let hw = 2;
        let mut m = vec![0.0f32; 8 * hw];
        m[0..2].copy_from_slice(&[1.0, 2.0]);
        m[4 * hw..4 * hw + 2].copy_from_slice(&[50.0, 0.0]);
        m[5 * hw..5 * hw + 2].copy_from_slice(&[-40.0, 2.0]);
        let eps = vec![0.5f32; 4 * hw];
        let mut out = vec![0.0f32; 4 * hw];
        sample_latents(&m, 1, hw, &eps, &mut out);
        let close = |a: f32, b: f64| ((f64::from(a) - b) / b.abs().max(1e-30)).abs() < 1e-5;
        assert!(
            close(out[0], (1.0 + 10f64.exp() * 0.5) * 0.18215),
            "{}",
            out[0]
        );
        assert!(close(out[1], (2.0 + 0.5) * 0.18215), "{}", out[1]);
        assert!(close(out[2], (-15f64).exp() * 0.5 * 0.18215), "{}", out[2]);
        assert!(close(out[3], 1f64.exp() * 0.5 * 0.18215), "{}", out[3]);
    }

    #[test]
    fn frames_move_behind_channels() {
        let (frames, hw) = (3, 1);
        let mut m = vec![0.0f32; frames * 8];
        for f in 0..frames {
            for c in 0..4 {
                m[f * 8 + c] = (10 * f + c) as f32;
                m[f * 8 + 4 + c] = -30.0;
            }
        }
        let mut out = vec![0.0f32; frames * 4];
        sample_latents(&m, frames, hw, &vec![0.0; frames * 4], &mut out);
        for c in 0..4 {
            for f in 0..frames {
                assert_eq!(out[c * frames + f], (10 * f + c) as f32 * SCALING);
            }
        }
    }

    #[test]
    fn pixels_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(from_unit(to_unit(v)), v);
        }
        assert_eq!(from_unit(-3.0), 0);
        assert_eq!(from_unit(3.0), 255);
    }
}
