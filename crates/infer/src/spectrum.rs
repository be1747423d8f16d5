//! One short-time spectrum at a time: window × samples, zero-padded, real FFT. The one STFT
//! kernel of every audio feature in facesync (the built-in log-mel, Wav2Lip's mel,
//! LatentSync's Whisper mel); each keeps its own framing, mel basis and logarithm.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{FftNum, RealFftPlanner, RealToComplex};

/// The short-time spectrum of one frame of samples at a time: the samples times a window,
/// zero-padded to the FFT size, through a real FFT with buffers planned once. In `f32` by
/// default; `WindowedFft<f64>` where a reference computes in double precision (Wav2Lip's
/// mel, whose logarithm magnifies the f32 FFT's rounding in the quiet bands of loud frames).
///
/// ```
/// // 25 ms periodic Hann at 16 kHz, zero-padded to 512 points.
/// let mut fft = facesync_infer::WindowedFft::hann(400, 512);
/// let mut power = vec![0.0f32; fft.bins()];
/// let tone: Vec<f32> = (0..400)
///     .map(|i| (std::f32::consts::TAU * 1000.0 * i as f32 / 16_000.0).sin())
///     .collect();
/// fft.power_into(&tone, &mut power);
/// let peak = (0..power.len()).max_by(|&a, &b| power[a].total_cmp(&power[b])).unwrap();
/// assert_eq!(peak, 32); // 1000 Hz: bin 1000 · 512 / 16000
/// ```
pub struct WindowedFft<T: FftNum = f32> {
    fft: Arc<dyn RealToComplex<T>>,
    input: Vec<T>,
    spectrum: Vec<Complex<T>>,
    scratch: Vec<Complex<T>>,
    window: Vec<T>,
}

impl<T: FftNum> std::fmt::Debug for WindowedFft<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedFft")
            .field("window", &self.window.len())
            .field("n_fft", &self.input.len())
            .finish_non_exhaustive()
    }
}

/// The periodic Hann window of `len` samples (`scipy`/`librosa` `get_window("hann", len)`):
/// `0.5 − 0.5·cos(2π i / len)`, computed in f64.
pub(crate) fn periodic_hann(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let x = 2.0 * std::f64::consts::PI * i as f64 / len as f64;
            (0.5 - 0.5 * x.cos()) as f32
        })
        .collect()
}

impl WindowedFft {
    /// Frames of at most `window` samples under a periodic Hann window, zero-padded to
    /// `n_fft` points. Panics if `window > n_fft`.
    pub fn hann(window: usize, n_fft: usize) -> Self {
        Self::new(periodic_hann(window), n_fft)
    }
}

impl<T: FftNum> WindowedFft<T> {
    /// Frames of at most `window.len()` samples under `window`, zero-padded to `n_fft` points.
    pub(crate) fn new(window: Vec<T>, n_fft: usize) -> Self {
        assert!(
            window.len() <= n_fft,
            "a window of {} samples does not fit an FFT of {n_fft}",
            window.len()
        );
        let fft = RealFftPlanner::<T>::new().plan_fft_forward(n_fft);
        Self {
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
        }
    }

    /// The window.
    pub(crate) fn window(&self) -> &[T] {
        &self.window
    }

    /// Frequency bins of the spectrum: `n_fft / 2 + 1`.
    pub fn bins(&self) -> usize {
        self.spectrum.len()
    }

    /// The spectrum of `samples` (the first at most `window` of them count; missing ones count
    /// as zero), bins `0..=n_fft / 2`.
    pub(crate) fn spectrum(&mut self, samples: &[T]) -> &[Complex<T>] {
        // The FFT uses its input as scratch: every frame starts from zeros.
        self.input.fill(T::zero());
        for ((dst, w), x) in self.input.iter_mut().zip(&self.window).zip(samples) {
            *dst = *x * *w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .expect("fft buffers come from the plan");
        &self.spectrum
    }

    /// Writes the power `|X_k|²` of every bin of the spectrum of `samples` (the first at most
    /// `window` of them count; missing ones count as zero) into `power`. Panics unless
    /// `power.len()` is [`bins`](Self::bins).
    pub fn power_into(&mut self, samples: &[T], power: &mut [T]) {
        assert_eq!(
            power.len(),
            self.bins(),
            "the power spectrum has one value per bin"
        );
        for (p, c) in power.iter_mut().zip(self.spectrum(samples)) {
            *p = c.norm_sqr();
        }
    }
}
