//! Rate estimation.
//!
//! A time-weighted exponential moving average of the rate, sampled on the dispatcher's fixed tick
//! (not on each increment), so that the estimate does not depend on how bursty the increments
//! are. Each tick contributes the instantaneous rate `Δpos / Δt` with weight
//! `α = 1 − exp(−Δt / τ)`; ticks without progress contribute a rate of zero, so the estimate
//! decays while the work stalls. The average is normalised by the total weight seen so far (as
//! Adam's bias correction, or indicatif's startup normalisation), so the first samples are not
//! pulled towards zero. No rate is reported before the first progress is seen.

/// Default time constant τ of the moving average.
pub(crate) const DEFAULT_TAU_SECS: f64 = 3.0;

#[derive(Debug, Clone)]
pub(crate) struct RateEstimator {
    tau: f64,
    last_t: f64,
    last_value: f64,
    ema: f64,
    weight: f64,
    seen_progress: bool,
}

impl RateEstimator {
    pub(crate) fn new(t: f64, value: f64, tau: f64) -> Self {
        Self {
            tau,
            last_t: t,
            last_value: value,
            ema: 0.0,
            weight: 0.0,
            seen_progress: false,
        }
    }

    /// Feeds the value observed at time `t`. A value below the previous one (a `set` backwards)
    /// restarts the estimate from there.
    pub(crate) fn sample(&mut self, t: f64, value: f64) {
        let dt = t - self.last_t;
        if dt <= 0.0 {
            return;
        }
        if value < self.last_value {
            *self = Self::new(t, value, self.tau);
            return;
        }
        let inst = (value - self.last_value) / dt;
        if inst > 0.0 {
            self.seen_progress = true;
        }
        let alpha = 1.0 - (-dt / self.tau).exp();
        self.ema = alpha * inst + (1.0 - alpha) * self.ema;
        self.weight = alpha + (1.0 - alpha) * self.weight;
        self.last_t = t;
        self.last_value = value;
    }

    /// Units per second, once any progress has been seen.
    pub(crate) fn rate(&self) -> Option<f64> {
        (self.seen_progress && self.weight > 0.0).then(|| self.ema / self.weight)
    }

    /// Seconds to cover `remaining` units at the current rate.
    pub(crate) fn eta(&self, remaining: f64) -> Option<f64> {
        if remaining <= 0.0 {
            return Some(0.0);
        }
        let rate = self.rate()?;
        (rate > 1e-12).then(|| remaining / rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(samples: &[(f64, f64)]) -> RateEstimator {
        let mut e = RateEstimator::new(0.0, 0.0, DEFAULT_TAU_SECS);
        for &(t, v) in samples {
            e.sample(t, v);
        }
        e
    }

    #[test]
    fn unknown_until_progress() {
        assert_eq!(feed(&[]).rate(), None);
        assert_eq!(feed(&[(0.1, 0.0), (0.2, 0.0)]).rate(), None);
        assert_eq!(feed(&[(0.1, 0.0)]).eta(10.0), None);
    }

    #[test]
    fn steady_rate_is_exact_from_the_first_sample() {
        // Startup normalisation: no pull towards zero.
        let e = feed(&[(0.1, 5.0)]);
        assert!((e.rate().unwrap() - 50.0).abs() < 1e-9);
        let samples: Vec<_> = (1..=50).map(|i| (i as f64 * 0.1, i as f64 * 5.0)).collect();
        let e = feed(&samples);
        assert!((e.rate().unwrap() - 50.0).abs() < 1e-9);
        assert!((e.eta(100.0).unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn bursty_work_gives_the_mean_rate() {
        // 16 units every 2 s, sampled at 10 Hz: the mean rate is 8/s.
        let mut samples = Vec::new();
        for tick in 1..=600 {
            let t = tick as f64 * 0.1;
            samples.push((t, (tick / 20) as f64 * 16.0));
        }
        let rate = feed(&samples).rate().unwrap();
        assert!((rate - 8.0).abs() < 3.0, "rate {rate}");
    }

    #[test]
    fn stall_decays_the_rate() {
        let mut samples: Vec<_> = (1..=20).map(|i| (i as f64 * 0.1, i as f64)).collect();
        let before = feed(&samples).rate().unwrap();
        samples.extend((21..=100).map(|i| (i as f64 * 0.1, 20.0)));
        let after = feed(&samples).rate().unwrap();
        assert!(after < before * 0.1, "{after} vs {before}");
    }

    #[test]
    fn going_backwards_restarts() {
        let e = feed(&[(0.1, 10.0), (0.2, 2.0)]);
        assert_eq!(e.rate(), None);
    }
}
