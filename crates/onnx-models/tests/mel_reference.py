"""Independent reference of the Wav2Lip/EDTalk mel features: FaceFusion 3.8.1's own steps
(facefusion/facefusion at 33cc6b40, `facefusion/audio.py`: `prepare_audio` line 94,
`create_mel_filter_bank` line 119, `create_spectrogram` line 137, and the lip syncer's
`prepare_audio_frame`), with scipy as FaceFusion calls it. Reads float32 16 kHz mono samples
from argv[1], writes the scaled mel columns ([columns][80] float32) to argv[2]. The input is
already 16 kHz mono: FaceFusion's ffmpeg decode, vocal separation and resampling are not part
of the comparison."""
import sys

import numpy as np
import scipy.signal

x = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64)
# prepare_audio: peak-normalise, pre-emphasis.
x = x / np.max(np.abs(x), axis=0)
x = scipy.signal.lfilter([1.0, -0.97], [1.0], x)


def hz_to_mel(hz):
    return 2595 * np.log10(1 + hz / 700)


def mel_to_hz(mel):
    return 700 * (10 ** (mel / 2595) - 1)


# create_mel_filter_bank: 82 HTK points, one triangle per segment.
bank = np.zeros((80, 401))
points = np.linspace(hz_to_mel(55.0), hz_to_mel(7600.0), 82)
idx = np.floor(801 * mel_to_hz(points) / 16000).astype(np.int16)
for i in range(80):
    bank[i, idx[i]:idx[i + 1]] = scipy.signal.windows.triang(idx[i + 1] - idx[i])
# create_spectrogram.
spec = scipy.signal.stft(x, nperseg=800, nfft=800, noverlap=600)[2]
spec = np.dot(bank, np.abs(spec))
# prepare_audio_frame (per window; here per column).
out = np.log10(np.maximum(np.exp(-5 * np.log(10)), spec)) * 1.6 + 3.2
out = out.clip(-4, 4).astype(np.float32).T
np.ascontiguousarray(out).tofile(sys.argv[2])
