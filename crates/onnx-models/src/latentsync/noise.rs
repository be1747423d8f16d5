//! Reproducible Gaussian noise: a counter-based generator (SplitMix64 keyed by the seed and a
//! stream number, Box–Muller), so that every chunk's draws depend only on the seed and the
//! chunk's index, never on the order chunks run in. (Not torch's or numpy's generator: a seed
//! gives the same result in facesync on every machine, not the same as the Python reference.)

/// The stream of the initial latents (one `[4, 1, h, w]` draw repeated over every frame, as
/// the reference repeats it over the whole video).
pub(crate) const INITIAL_LATENTS: u64 = 0;

/// The stream of chunk `chunk`'s VAE sampling noise for the masked faces (`reference` false)
/// or the reference faces (`reference` true).
pub(crate) fn vae_stream(chunk: usize, reference: bool) -> u64 {
    1 + 2 * chunk as u64 + u64::from(reference)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Standard normal draws.
#[derive(Debug, Clone)]
pub(crate) struct Noise {
    key: u64,
    counter: u64,
}

impl Noise {
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        Self {
            key: splitmix(seed ^ splitmix(stream.wrapping_add(0x5851_f42d_4c95_7f2d))),
            counter: 0,
        }
    }

    /// A uniform draw in (0, 1].
    fn uniform(&mut self) -> f64 {
        let x = splitmix(self.key.wrapping_add(self.counter));
        self.counter += 1;
        ((x >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `out` with independent N(0, 1) values.
    pub(crate) fn fill(&mut self, out: &mut [f32]) {
        for pair in out.chunks_mut(2) {
            let (u1, u2) = (self.uniform(), self.uniform());
            let r = (-2.0 * u1.ln()).sqrt();
            let a = 2.0 * std::f64::consts::PI * u2;
            pair[0] = (r * a.cos()) as f32;
            if let Some(v) = pair.get_mut(1) {
                *v = (r * a.sin()) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws_other_stream_other_draws() {
        let draw = |seed, stream| {
            let mut v = vec![0.0f32; 64];
            Noise::new(seed, stream).fill(&mut v);
            v
        };
        assert_eq!(draw(7, 3), draw(7, 3));
        assert_ne!(draw(7, 3), draw(7, 4));
        assert_ne!(draw(7, 3), draw(8, 3));
    }

    #[test]
    fn draws_are_standard_normal() {
        let mut v = vec![0.0f32; 200_000];
        Noise::new(42, INITIAL_LATENTS).fill(&mut v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        let beyond = v.iter().filter(|x| x.abs() > 1.96).count() as f64 / n;
        assert!(
            (beyond - 0.05).abs() < 0.005,
            "two-sided 5 % tail: {beyond}"
        );
    }
}
