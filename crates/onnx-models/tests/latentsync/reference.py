"""Reference computations for the LatentSync tests, written independently of the Rust code
from the upstream formulas (diffusers' DDIMScheduler as LatentSync configures it; the Whisper
log-mel of LatentSync's ONNX port, which uses librosa; the VAE sampling of its pipeline).

    python reference.py ddim '{"steps": 20, "guidance": 1.5, "step": 3, "x": [...], "u": [...], "c": [...]}'
    python reference.py vae '{"moments": [...], "eps": [...], "frames": F, "hw": N}'
    python reference.py mel IN.f32 OUT.f32

Prints JSON on stdout (ddim, vae) or writes raw little-endian float32 (mel: [80, columns]).
Needs numpy (and librosa for `mel`).
"""

import json
import sys

import numpy as np


def ddim(args):
    # diffusers: betas in float32, "scaled_linear".
    n_train, beta_start, beta_end = 1000, 0.00085, 0.012
    betas = np.linspace(beta_start**0.5, beta_end**0.5, n_train, dtype=np.float32) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas, dtype=np.float32)
    final_alpha_cumprod = alphas_cumprod[0]  # set_alpha_to_one = False
    steps = args["steps"]
    step_ratio = n_train // steps
    timesteps = (np.arange(0, steps) * step_ratio).round()[::-1].astype(np.int64) + 1
    out = {"timesteps": timesteps.tolist(), "alpha_t": [], "alpha_prev": []}
    for t in timesteps:
        prev = t - step_ratio
        out["alpha_t"].append(float(alphas_cumprod[t]))
        out["alpha_prev"].append(float(alphas_cumprod[prev] if prev >= 0 else final_alpha_cumprod))
    # One guided update at step index `step`, eta = 0.
    k = args["step"]
    t = timesteps[k]
    x = np.array(args["x"], np.float64)
    u = np.array(args["u"], np.float64)
    c = np.array(args["c"], np.float64)
    g = args["guidance"]
    eps = u + g * (c - u)
    a_t = float(alphas_cumprod[t])
    a_prev = out["alpha_prev"][k]
    x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    out["x0"] = x0.tolist()
    out["prev"] = (a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps).tolist()
    return out


def vae(args):
    f, hw = args["frames"], args["hw"]
    moments = np.array(args["moments"], np.float64).reshape(f, 8, hw)
    eps = np.array(args["eps"], np.float64).reshape(f, 4, hw)
    mean, logvar = np.split(moments, 2, axis=1)
    logvar = np.clip(logvar, -30.0, 20.0)
    latents = (mean + np.exp(0.5 * logvar) * eps) * 0.18215
    # f c (h w) -> c f (h w), as the UNet takes it.
    return {"latents": latents.transpose(1, 0, 2).reshape(-1).tolist()}


def mel(src, dst):
    import librosa

    audio = np.fromfile(src, dtype="<f4")
    stft = librosa.stft(y=audio, n_fft=400, hop_length=160, window="hann", pad_mode="reflect")
    magnitudes = np.abs(stft[:, :-1]) ** 2
    filters = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)
    log_spec = np.log10(np.clip(filters @ magnitudes, 1e-10, None))
    log_spec = np.maximum(log_spec, np.max(log_spec) - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    log_spec.astype("<f4").tofile(dst)


def main():
    what = sys.argv[1]
    if what == "mel":
        mel(sys.argv[2], sys.argv[3])
        return
    args = json.loads(sys.argv[2])
    print(json.dumps({"ddim": ddim, "vae": vae}[what](args)))


if __name__ == "__main__":
    main()
