"""Independent numpy reference of the Wav2Lip/EDTalk mel features (FaceFusion's definition,
with scipy.signal.stft's framing written out): reads float32 16 kHz mono samples from argv[1],
writes the scaled mel columns ([columns][80] float32) to argv[2]."""
import sys

import numpy as np

x = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64)
x = x / np.max(np.abs(x))
x = np.concatenate([[x[0]], x[1:] - 0.97 * x[:-1]])  # lfilter([1, -0.97], [1], x)
n_fft, hop = 800, 200
win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
padded = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft // 2)])
extra = (-(len(padded) - n_fft)) % hop
padded = np.concatenate([padded, np.zeros(extra)])
cols = (len(padded) - n_fft) // hop + 1
frames = np.stack([padded[j * hop:j * hop + n_fft] for j in range(cols)])
mag = np.abs(np.fft.rfft(frames * win, axis=1)) / win.sum()
mel = lambda f: 2595 * np.log10(1 + f / 700)
hz = lambda m: 700 * (10 ** (m / 2595) - 1)
edges = hz(np.linspace(mel(55.0), mel(7600.0), 82))
freqs = np.arange(n_fft // 2 + 1) * 16000 / n_fft
bank = np.zeros((80, len(freqs)))
for b in range(80):
    lo, c, hi = edges[b:b + 3]
    up = (freqs - lo) / (c - lo)
    down = (hi - freqs) / (hi - c)
    bank[b] = np.clip(np.minimum(up, down), 0, None)
spec = mag @ bank.T
out = np.clip(np.log10(np.maximum(1e-5, spec)) * 1.6 + 3.2, -4, 4).astype(np.float32)
out.tofile(sys.argv[2])
