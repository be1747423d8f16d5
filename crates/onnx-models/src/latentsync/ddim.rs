//! The DDIM scheduler as LatentSync configures diffusers' `DDIMScheduler`
//! (`configs/scheduler_config.json`): scaled-linear β from 0.00085 to 0.012 over 1000 training
//! steps, `steps_offset` 1, `set_alpha_to_one` false, `clip_sample` false, ε-prediction,
//! "leading" timestep spacing, eta 0 (deterministic), and the classifier-free guidance
//! combination `u + g·(c − u)` folded into the same pass over the latents.

/// Training steps of the noise schedule.
pub(crate) const TRAIN_STEPS: usize = 1000;
const BETA_START: f64 = 0.00085;
const BETA_END: f64 = 0.012;
const STEPS_OFFSET: usize = 1;

/// `alphas_cumprod` of the scaled-linear schedule: `β_t = (√0.00085 + t/999 · (√0.012 −
/// √0.00085))²`, `ᾱ_t = Π (1 − β_s)`, computed in f64.
pub(crate) fn alphas_cumprod() -> Vec<f64> {
    let (a, b) = (BETA_START.sqrt(), BETA_END.sqrt());
    let mut acc = 1.0;
    (0..TRAIN_STEPS)
        .map(|t| {
            let beta = (a + (b - a) * t as f64 / (TRAIN_STEPS - 1) as f64).powi(2);
            acc *= 1.0 - beta;
            acc
        })
        .collect()
}

/// One denoising step's coefficients: `x_prev = p·x + q·ε` and the predicted clean latents
/// `x0 = r·x + s·ε`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepCoefficients {
    /// The training timestep the UNet is called with.
    pub(crate) timestep: i64,
    pub(crate) p: f32,
    pub(crate) q: f32,
    pub(crate) r: f32,
    pub(crate) s: f32,
}

/// The inference schedule for a number of steps.
#[derive(Debug, Clone)]
pub(crate) struct Ddim {
    steps: Vec<StepCoefficients>,
}

impl Ddim {
    /// The schedule of `n_steps` (1 ..= 1000) steps.
    pub(crate) fn new(n_steps: usize) -> Self {
        let n = n_steps.clamp(1, TRAIN_STEPS);
        let ac = alphas_cumprod();
        let ratio = TRAIN_STEPS / n;
        // set_alpha_to_one = false: the step past t = 0 uses ᾱ_0.
        let final_alpha = ac[0];
        let steps = (0..n)
            .rev()
            .map(|k| {
                let t = k * ratio + STEPS_OFFSET;
                let prev = t as i64 - ratio as i64;
                let a_t = ac[t];
                let a_prev = if prev >= 0 {
                    ac[prev as usize]
                } else {
                    final_alpha
                };
                // x0 = (x − √(1−ᾱ_t)·ε) / √ᾱ_t; x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε.
                let r = 1.0 / a_t.sqrt();
                let s = -(1.0 - a_t).sqrt() / a_t.sqrt();
                let p = a_prev.sqrt() * r;
                let q = a_prev.sqrt() * s + (1.0 - a_prev).sqrt();
                StepCoefficients {
                    timestep: t as i64,
                    p: p as f32,
                    q: q as f32,
                    r: r as f32,
                    s: s as f32,
                }
            })
            .collect();
        Self { steps }
    }

    /// Steps in the order they run (timesteps descending).
    pub(crate) fn steps(&self) -> &[StepCoefficients] {
        &self.steps
    }

    /// Timesteps in the order they run.
    #[cfg(test)]
    pub(crate) fn timesteps(&self) -> Vec<i64> {
        self.steps.iter().map(|s| s.timestep).collect()
    }
}

/// Classifier-free guidance and one DDIM update in one pass: `ε = u + g·(c − u)` (or `c`
/// alone when `uncond` is `None`), `x ← p·x + q·ε`; `x0`, when given, receives the predicted
/// clean latents `r·x + s·ε` of the same step (computed from `x` before the update).
pub(crate) fn guided_step(
    coeff: &StepCoefficients,
    guidance: f32,
    latents: &mut [f32],
    cond: &[f32],
    uncond: Option<&[f32]>,
    x0: Option<&mut [f32]>,
) {
    assert_eq!(latents.len(), cond.len(), "noise prediction size");
    let StepCoefficients { p, q, r, s, .. } = *coeff;
    let eps_at = |i: usize| match uncond {
        Some(u) => u[i] + guidance * (cond[i] - u[i]),
        None => cond[i],
    };
    match x0 {
        Some(x0) => {
            for (i, (x, o)) in latents.iter_mut().zip(x0.iter_mut()).enumerate() {
                let e = eps_at(i);
                *o = r * *x + s * e;
                *x = p * *x + q * e;
            }
        }
        None => match uncond {
            // The hot path: straight slices, so the loop vectorises.
            Some(u) => {
                assert_eq!(u.len(), cond.len(), "unconditional prediction size");
                for ((x, &c), &u) in latents.iter_mut().zip(cond).zip(u) {
                    let e = u + guidance * (c - u);
                    *x = p * *x + q * e;
                }
            }
            None => {
                for (x, &c) in latents.iter_mut().zip(cond) {
                    *x = p * *x + q * c;
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_steps_are_the_leading_schedule_plus_offset() {
        let t = Ddim::new(20).timesteps();
        let expected: Vec<i64> = (0..20).rev().map(|k| k * 50 + 1).collect();
        assert_eq!(t, expected);
        assert_eq!(t[0], 951);
        assert_eq!(*t.last().unwrap(), 1);
    }

    #[test]
    fn the_last_step_lands_on_alpha_zero_not_one() {
        // t = 1 → prev = −49 < 0 → ᾱ_prev = ᾱ_0 (set_alpha_to_one = false): p ≠ 1/√ᾱ_1.
        let ddim = Ddim::new(20);
        let last = ddim.steps().last().unwrap();
        let ac = alphas_cumprod();
        let p = (ac[0] / ac[1]).sqrt();
        assert!((f64::from(last.p) - p).abs() < 1e-6, "{} vs {p}", last.p);
    }

    #[test]
    fn one_step_without_guidance_is_the_ddim_formula() {
        let ddim = Ddim::new(10);
        let c = ddim.steps()[3];
        let ac = alphas_cumprod();
        let (t, prev) = (c.timestep as usize, c.timestep as usize - 100);
        let (x, e) = (0.7f64, -0.3f64);
        let x0 = (x - (1.0 - ac[t]).sqrt() * e) / ac[t].sqrt();
        let expected = ac[prev].sqrt() * x0 + (1.0 - ac[prev]).sqrt() * e;
        let mut lat = [x as f32];
        let mut pred = [0.0f32];
        guided_step(&c, 1.0, &mut lat, &[e as f32], None, Some(&mut pred));
        assert!(
            (f64::from(lat[0]) - expected).abs() < 1e-5,
            "{} vs {expected}",
            lat[0]
        );
        assert!(
            (f64::from(pred[0]) - x0).abs() < 1e-5,
            "{} vs {x0}",
            pred[0]
        );
    }

    #[test]
    fn guidance_combines_before_the_update() {
        let c = Ddim::new(20).steps()[0];
        let (u, k, g) = (0.2f32, -0.5f32, 1.5f32);
        let e = u + g * (k - u);
        let mut a = [1.0f32, -2.0];
        let mut b = a;
        guided_step(&c, g, &mut a, &[k, k], Some(&[u, u]), None);
        guided_step(&c, 1.0, &mut b, &[e, e], None, None);
        assert_eq!(a, b);
    }
}
