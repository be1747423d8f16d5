//! Whisper's log-mel spectrogram, computed as audio streams in, and the per-frame embedding
//! windows LatentSync feeds its UNet.
//!
//! As Whisper (and LatentSync's `transcribe`) computes it: 16 kHz mono, centred STFT (reflect
//! padding of `n_fft / 2`), periodic Hann window of 400 samples, hop 160, power spectrum, the
//! last STFT frame dropped (`floor(n / 160)` columns), librosa's Slaney mel basis (80 bands,
//! 0–8000 Hz, area-normalised), `log10(max(x, 1e-10))`, floored at the clip's maximum minus 8,
//! then `(x + 4) / 4`. The clip is cut in 30 s segments of 3000 columns, the last one
//! zero-padded; each segment gives `floor(columns / 2)` embedding frames (50 per second).
//!
//! Streaming: [`MelStream::push`] analyses every column whose window is complete and keeps
//! only the samples a later column needs (less than one window); the log10 columns are kept
//! (320 bytes per 10 ms, the same as the built-in features) because the floor depends on the
//! whole clip's maximum. The audio itself is never held.

use infer::WindowedFft;

/// Sample rate Whisper expects.
pub(crate) const SAMPLE_RATE: u32 = 16_000;
/// STFT size and window length.
pub(crate) const N_FFT: usize = 400;
/// Hop between columns (10 ms).
pub(crate) const HOP: usize = 160;
/// Mel bands.
pub(crate) const N_MELS: usize = 80;
/// Columns in one Whisper segment (30 s).
pub(crate) const SEGMENT_COLUMNS: usize = 3000;
/// Embedding frames in one segment's encoder output (50 per second).
pub(crate) const SEGMENT_EMBEDDINGS: usize = SEGMENT_COLUMNS / 2;
/// Whisper-tiny's embedding width.
pub(crate) const EMBED_DIM: usize = 384;
/// Encoder layers the export returns (input embedding + 4 blocks).
pub(crate) const EMBED_LAYERS: usize = 5;
/// Embedding frames in one video frame's window (`center − 4 … center + 5`).
pub(crate) const WINDOW_EMBEDDINGS: usize = 10;
/// Rows of one video frame's UNet conditioning: `10 · 5`.
pub(crate) const WINDOW_ROWS: usize = WINDOW_EMBEDDINGS * EMBED_LAYERS;

const BINS: usize = N_FFT / 2 + 1;
const PAD: usize = N_FFT / 2;

/// Converts Hz to Slaney mel (librosa `hz_to_mel(htk=False)`).
fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

/// Converts Slaney mel to Hz (librosa `mel_to_hz(htk=False)`).
fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels=80)` (Slaney scale and area
/// normalisation), computed in f64 and stored as f32 like Whisper's `mel_filters.npz`:
/// `[band][bin]`, row-major.
pub(crate) fn mel_filters() -> Vec<f32> {
    let sr = f64::from(SAMPLE_RATE);
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let edges: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let mut out = vec![0.0f32; N_MELS * BINS];
    for b in 0..N_MELS {
        let enorm = 2.0 / (edges[b + 2] - edges[b]);
        let (d0, d1) = (edges[b + 1] - edges[b], edges[b + 2] - edges[b + 1]);
        for k in 0..BINS {
            let f = k as f64 * sr / N_FFT as f64;
            let lower = (f - edges[b]) / d0;
            let upper = (edges[b + 2] - f) / d1;
            out[b * BINS + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    out
}

/// Index into a signal of length `n` of padded position `i` (may be negative or past the end)
/// under numpy's `reflect` padding (the edge sample is not repeated), folded as often as needed.
fn reflect(i: i64, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let m = i.rem_euclid(period);
    (if m < n as i64 { m } else { period - m }) as usize
}

/// One column at a time: window, real FFT, power, mel basis, log10.
struct ColumnAnalyser {
    /// Periodic Hann (librosa's `get_window("hann", 400, fftbins=True)`), no zero padding.
    fft: WindowedFft,
    samples: [f32; N_FFT],
    filters: Vec<f32>,
    power: Vec<f32>,
}

impl ColumnAnalyser {
    fn new() -> Self {
        Self {
            fft: WindowedFft::hann(N_FFT, N_FFT),
            samples: [0.0; N_FFT],
            filters: mel_filters(),
            power: vec![0.0; BINS],
        }
    }

    /// The log10 mel column of the `N_FFT` samples `sample(0..N_FFT)`.
    fn column(&mut self, sample: impl Fn(usize) -> f32) -> [f32; N_MELS] {
        for (i, dst) in self.samples.iter_mut().enumerate() {
            *dst = sample(i);
        }
        self.fft.power_into(&self.samples, &mut self.power);
        let mut out = [0.0f32; N_MELS];
        for (o, row) in out.iter_mut().zip(self.filters.chunks_exact(BINS)) {
            let e: f32 = row.iter().zip(&self.power).map(|(w, p)| w * p).sum();
            *o = e.max(1e-10).log10();
        }
        out
    }
}

/// Whisper's log-mel of 16 kHz mono audio pushed block by block (see the module docs).
pub(crate) struct MelStream {
    analyser: ColumnAnalyser,
    /// The first `PAD + 1` samples (the start's reflection reads them).
    head: Vec<f32>,
    /// Samples from absolute index `base` on.
    buf: Vec<f32>,
    base: usize,
    /// Samples pushed.
    n: usize,
    columns: Vec<[f32; N_MELS]>,
}

impl std::fmt::Debug for MelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelStream")
            .field("samples", &self.n)
            .field("columns", &self.columns.len())
            .finish_non_exhaustive()
    }
}

impl MelStream {
    pub(crate) fn new() -> Self {
        Self {
            analyser: ColumnAnalyser::new(),
            head: Vec::with_capacity(PAD + 1),
            buf: Vec::new(),
            base: 0,
            n: 0,
            columns: Vec::new(),
        }
    }

    /// Adds the next 16 kHz mono samples.
    pub(crate) fn push(&mut self, samples: &[f32]) {
        let take = (PAD + 1 - self.head.len()).min(samples.len());
        self.head.extend_from_slice(&samples[..take]);
        self.buf.extend_from_slice(samples);
        self.n += samples.len();
        self.analyse(false);
    }

    /// Samples held beyond the first `PAD + 1` (for tests: less than one window).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.buf.len()
    }

    /// The whole clip's columns: the tail is reflected as the centred STFT does.
    pub(crate) fn finish(mut self) -> WhisperMel {
        self.analyse(true);
        let max = self
            .columns
            .iter()
            .flat_map(|c| c.iter().copied())
            .fold(f32::NEG_INFINITY, f32::max);
        WhisperMel {
            columns: self.columns,
            max,
        }
    }

    /// Computes every column whose samples are known (all of them at the end: `n / HOP`).
    fn analyse(&mut self, end: bool) {
        let n = self.n;
        let wanted = n / HOP;
        while self.columns.len() < wanted {
            let j = self.columns.len();
            // Column j reads samples 160 j − 200 … 160 j + 199.
            let last = j * HOP + PAD - 1;
            let start_ok = j * HOP >= PAD || self.head.len() > PAD || end;
            if !(end || last < n) || !start_ok {
                break;
            }
            let (head, buf, base) = (&self.head, &self.buf, self.base);
            let first = j as i64 * HOP as i64 - PAD as i64;
            let col = self.analyser.column(|i| {
                let k = reflect(first + i as i64, n);
                if k < head.len() {
                    head[k]
                } else {
                    buf[k - base]
                }
            });
            self.columns.push(col);
        }
        // Keep what the next column reads (and, at the end, nothing).
        let keep_from = (self.columns.len() * HOP).saturating_sub(PAD).min(n);
        if keep_from > self.base {
            self.buf.drain(..keep_from - self.base);
            self.base = keep_from;
        }
    }
}

/// A clip's Whisper log-mel columns (log10, before the floor) and their maximum.
#[derive(Debug, Clone)]
pub(crate) struct WhisperMel {
    columns: Vec<[f32; N_MELS]>,
    max: f32,
}

impl WhisperMel {
    /// `n` columns of `value` (tests of what reads the mel).
    #[cfg(test)]
    pub(crate) fn constant(n: usize, value: f32) -> Self {
        Self {
            columns: vec![[value; N_MELS]; n],
            max: value,
        }
    }

    /// Columns (100 per second).
    pub(crate) fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// Segments of 3000 columns (the last one partial).
    #[cfg(test)]
    pub(crate) fn n_segments(&self) -> usize {
        self.columns.len().div_ceil(SEGMENT_COLUMNS)
    }

    /// Embedding frames of the whole clip: each segment gives `floor(columns / 2)`.
    pub(crate) fn n_embeddings(&self) -> usize {
        let full = self.columns.len() / SEGMENT_COLUMNS;
        let rest = self.columns.len() % SEGMENT_COLUMNS;
        full * SEGMENT_EMBEDDINGS + rest / 2
    }

    /// Embedding frames contributed by segment `k`.
    #[cfg(test)]
    pub(crate) fn segment_embeddings(&self, k: usize) -> usize {
        let cols = self
            .columns
            .len()
            .saturating_sub(k * SEGMENT_COLUMNS)
            .min(SEGMENT_COLUMNS);
        cols / 2
    }

    /// Segment `k` as Whisper's input `[80, 3000]` (mel-major): floored at the clip's
    /// maximum − 8, `(x + 4) / 4`, zero-padded past the clip.
    pub(crate) fn segment(&self, k: usize, out: &mut [f32]) {
        assert_eq!(out.len(), N_MELS * SEGMENT_COLUMNS, "segment buffer");
        out.fill(0.0);
        let floor = self.max - 8.0;
        let start = k * SEGMENT_COLUMNS;
        let cols = self.columns.get(start..).unwrap_or(&[]);
        for (c, col) in cols.iter().take(SEGMENT_COLUMNS).enumerate() {
            for (m, &v) in col.iter().enumerate() {
                out[m * SEGMENT_COLUMNS + c] = (v.max(floor) + 4.0) / 4.0;
            }
        }
    }
}

/// The embedding frames of video frame `frame` at `fps`: `int(frame · 50 / fps) − 4 …
/// + 5`, each clamped to `0 … len − 1` (as LatentSync's `get_sliced_feature`). `len` > 0.
pub(crate) fn window_indices(frame: usize, fps: f64, len: usize) -> [usize; WINDOW_EMBEDDINGS] {
    let centre = (frame as f64 * 50.0 / fps) as i64;
    let last = len as i64 - 1;
    std::array::from_fn(|r| (centre - 4 + r as i64).clamp(0, last) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.max(1);
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                0.3 * (i as f32 * 0.07).sin() + (x as f32 / u32::MAX as f32 - 0.5) * 0.2
            })
            .collect()
    }

    fn whole(samples: &[f32]) -> WhisperMel {
        let mut s = MelStream::new();
        s.push(samples);
        s.finish()
    }

    #[test]
    fn columns_are_floor_n_over_hop() {
        for n in [0, 1, 150, 160, 319, 320, 4000, 16_000] {
            assert_eq!(whole(&signal(n, 3)).n_columns(), n / HOP, "{n} samples");
        }
    }

    #[test]
    fn streaming_equals_one_push_and_holds_less_than_a_window() {
        let x = signal(23_456, 9);
        let reference = whole(&x);
        for block in [1usize, 7, 160, 399, 4096] {
            let mut s = MelStream::new();
            let mut most = 0;
            for b in x.chunks(block) {
                s.push(b);
                most = most.max(s.held());
            }
            assert!(most < N_FFT + block, "block {block}: {most} samples held");
            let got = s.finish();
            assert_eq!(got.columns, reference.columns, "block {block}");
        }
    }

    #[test]
    fn reflect_matches_numpy_padding() {
        // np.pad([a, b, c, d], 3, mode="reflect") = d c b | a b c d | c b a
        let idx: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(idx, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn segments_floor_normalise_and_pad() {
        let m = WhisperMel {
            columns: vec![[1.0; N_MELS], [-20.0; N_MELS], [0.5; N_MELS]],
            max: 1.0,
        };
        let mut seg = vec![9.0; N_MELS * SEGMENT_COLUMNS];
        m.segment(0, &mut seg);
        assert_eq!(seg[0], 1.25);
        assert_eq!(seg[1], (-7.0 + 4.0) / 4.0, "floored at max − 8");
        assert_eq!(seg[2], 1.125);
        assert_eq!(seg[3], 0.0, "zero padding");
        assert_eq!(seg[SEGMENT_COLUMNS + 2], 1.125, "band-major layout");
        assert_eq!(m.n_embeddings(), 1);
        assert_eq!(m.n_segments(), 1);
    }

    #[test]
    fn embedding_counts_per_segment() {
        let m = WhisperMel {
            columns: vec![[0.0; N_MELS]; 3000 + 3000 + 7],
            max: 0.0,
        };
        assert_eq!(m.n_segments(), 3);
        assert_eq!(m.n_embeddings(), 3003);
        assert_eq!(
            (0..3).map(|k| m.segment_embeddings(k)).collect::<Vec<_>>(),
            vec![1500, 1500, 3]
        );
    }

    #[test]
    fn windows_clamp_at_both_ends() {
        let check = |frame, fps, len, expected: [usize; 10]| {
            assert_eq!(window_indices(frame, fps, len), expected, "frame {frame}");
        };
        check(0, 25.0, 100, [0, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
        check(1, 25.0, 100, [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]);
        check(10, 25.0, 100, [16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
        check(48, 25.0, 100, [92, 93, 94, 95, 96, 97, 98, 99, 99, 99]);
        check(60, 25.0, 100, [99; 10]);
        // 30 fps: int(7 · 50 / 30) = int(11.67) = 11.
        check(7, 30.0, 100, [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    }
}
