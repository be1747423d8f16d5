//! Shared test inputs: a real face crop and speech-like audio generated in code.
#![allow(dead_code, unreachable_pub)]

use frame::Frame;

pub use test_kit::astronaut_face;

/// The on/off envelope of [`speech`] at time `t` (0–1): 4 syllables per second, each 150 ms
/// of voice with 15 ms raised-cosine ramps, then 100 ms of silence.
pub fn envelope(t: f64) -> f64 {
    let phase = t.rem_euclid(0.25);
    let ramp = 0.015;
    if phase >= 0.15 {
        0.0
    } else if phase < ramp {
        0.5 - 0.5 * (std::f64::consts::PI * phase / ramp).cos()
    } else if phase > 0.15 - ramp {
        0.5 - 0.5 * (std::f64::consts::PI * (0.15 - phase) / ramp).cos()
    } else {
        1.0
    }
}

/// Voiced syllables: a glottal pulse train (harmonics of an f0 gliding 120–200 Hz, falling
/// 12 dB/octave) shaped by three formants (700, 1200, 2600 Hz), times [`envelope`];
/// interleaved with `channels` identical channels at `rate` Hz, peak about 0.3.
pub fn speech(rate: u32, channels: u16, secs: f64) -> Vec<f32> {
    let n = (secs * f64::from(rate)) as usize;
    let formants = [(700.0, 130.0), (1200.0, 150.0), (2600.0, 250.0)];
    let gain = |f: f64| -> f64 {
        formants
            .iter()
            .map(|&(fc, bw)| 1.0 / (1.0 + ((f - fc) / bw).powi(2)))
            .sum::<f64>()
    };
    let mut phase = 0.0f64;
    let mut out = Vec::with_capacity(n * channels as usize);
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let f0 = 160.0 + 40.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
        phase += f0 / f64::from(rate);
        let mut v = 0.0;
        let mut k = 1;
        while f0 * (k as f64) < 4000.0 {
            let f = f0 * k as f64;
            v += gain(f) / (k as f64) * (2.0 * std::f64::consts::PI * phase * k as f64).sin();
            k += 1;
        }
        let s = (0.12 * v * envelope(t)) as f32;
        out.extend(std::iter::repeat_n(s, channels as usize));
    }
    out
}

/// Mean of [`envelope`] over video frame `i` at `fps`.
pub fn frame_envelope(i: usize, fps: f64) -> f64 {
    let steps = 40;
    (0..steps)
        .map(|k| envelope((i as f64 + (k as f64 + 0.5) / steps as f64) / fps))
        .sum::<f64>()
        / steps as f64
}

/// Pearson correlation.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Mean darkness (255 − luma) in the box between the lips of the default geometry.
pub fn mouth_darkness(f: &Frame) -> f64 {
    let r = f.width() as f32;
    let (cx, cy) = (0.5 * r, 0.645 * r);
    let (x0, x1) = ((cx - 0.1 * r) as u32, (cx + 0.1 * r) as u32);
    let (y0, y1) = ((cy - 0.01 * r) as u32, (cy + 0.08 * r) as u32);
    let mut sum = 0.0;
    let mut n = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            let [red, g, b] = f.pixel(x, y);
            let luma = 0.299 * f64::from(red) + 0.587 * f64::from(g) + 0.114 * f64::from(b);
            sum += 255.0 - luma;
            n += 1.0;
        }
    }
    sum / n
}
