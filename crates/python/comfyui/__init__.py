"""facesync lip sync as a ComfyUI custom node.

Install: ``pip install facesync`` into ComfyUI's Python (see the repository README), then copy
or link this folder into ``ComfyUI/custom_nodes/facesync``.

The node "facesync lip sync" takes an IMAGE batch (float ``[B, H, W, C]`` in 0..1) and an
AUDIO (``{"waveform": [B, C, T], "sample_rate": int}``) and returns the lip-synced IMAGE batch,
as long as the audio (a shorter video plays ping-pong). While it runs, the UI's progress bar
moves through ``comfy.utils.ProgressBar.update_absolute`` (from facesync's ComfyUI adapter,
throttled as ComfyUI throttles), previews of the inference show in the node (when Pillow is
there, as it is in ComfyUI), and ComfyUI's interrupt (``comfy.model_management``) cancels the
run between batches: the node then raises ComfyUI's ``InterruptProcessingException``.
"""

import json

CATEGORY = "facesync"
PREVIEW_IMAGE = 1  # ComfyUI's binary event type
FORMAT_PNG = 2  # ComfyUI's image format code


class FacesyncLipSync:
    """IMAGE batch + AUDIO in, IMAGE batch out, with progress, previews and cancellation."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "audio": ("AUDIO",),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.01}),
                "resolution": (["256", "512"],),
                "steps": ("INT", {"default": 20, "min": 1, "max": 200}),
                "no_face": (["pass", "interpolate", "error"],),
                "backend": (["auto", "cpu", "gpu"],),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "lipsync"
    CATEGORY = CATEGORY

    def lipsync(self, images, audio, fps=25.0, resolution="256", steps=20, no_face="pass",
                backend="auto", unique_id=None):
        import numpy as np

        import comfy.model_management as model_management
        import comfy.utils

        import facesync

        frames = _frames_u8(images)
        count, height, width, _ = frames.shape
        samples, channels, sample_rate = _audio_f32(audio)
        bar = comfy.utils.ProgressBar(100)
        state = {"value": 0, "max": 100}

        def send(message):
            # Called on facesync's sink thread. In ComfyUI, update_absolute first checks the
            # interrupt flag and raises when set: facesync then cancels the run and re-raises.
            if isinstance(message, str):
                decoded = json.loads(message)
                if decoded["type"] == "progress":
                    state.update(value=decoded["data"]["value"], max=decoded["data"]["max"])
                    bar.update_absolute(state["value"], state["max"])
                return
            preview = comfy_preview(message)
            if preview is not None:
                bar.update_absolute(state["value"], state["max"], preview)

        comfy_options = {
            "send": send,
            "node_id": "" if unique_id is None else str(unique_id),
            "node_type": "FacesyncLipSync",
            "interrupted": model_management.processing_interrupted,
        }
        try:
            out, n = facesync.run_frames(
                frames.tobytes(), count, height, width, float(fps),
                samples.tobytes(), channels, sample_rate,
                resolution=int(resolution), steps=int(steps), no_face=no_face, backend=backend,
                comfy=comfy_options,
            )
        except facesync.Cancelled:
            # ComfyUI's interrupt: let ComfyUI see its own exception (it clears the flag).
            model_management.throw_exception_if_processing_interrupted()
            raise
        result = np.frombuffer(out, dtype=np.uint8).reshape(n, height, width, 3)
        return (_to_image(result.astype(np.float32) / 255.0),)


def _frames_u8(images):
    """IMAGE ([B, H, W, C] floats in 0..1, torch or anything numpy takes) as uint8 RGB."""
    import numpy as np

    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or array.shape[0] == 0:
        raise ValueError(f"images: expected an IMAGE batch [B, H, W, C], got shape {array.shape}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    array = array[..., :3]
    return np.ascontiguousarray((np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def _audio_f32(audio):
    """AUDIO ({"waveform": [B, C, T], "sample_rate": int}) as interleaved float32 samples of
    its first batch item, its channel count and rate."""
    import numpy as np

    try:
        waveform, rate = audio["waveform"], int(audio["sample_rate"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"audio: expected {{'waveform': [B, C, T], 'sample_rate': int}} ({e})")
    if hasattr(waveform, "detach"):
        waveform = waveform.detach().cpu().numpy()
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim == 3:
        wave = wave[0]
    if wave.ndim == 1:
        wave = wave[None]
    if wave.ndim != 2 or wave.shape[1] == 0:
        raise ValueError(f"audio: expected a waveform [B, C, T], got shape {np.shape(waveform)}")
    return np.ascontiguousarray(wave.T), wave.shape[0], rate


def _to_image(array):
    try:
        import torch
    except ImportError:
        return array
    return torch.from_numpy(array)


def comfy_preview(frame):
    """A preview frame from facesync's ComfyUI adapter (4-byte big-endian event type 1, 4-byte
    BE image format 2 = PNG, the PNG) as the ``(format, PIL image, max_size)`` tuple that
    ``ProgressBar.update_absolute`` takes; ``None`` without Pillow or for another frame."""
    if len(frame) < 8:
        return None
    kind = int.from_bytes(frame[0:4], "big")
    image_format = int.from_bytes(frame[4:8], "big")
    if kind != PREVIEW_IMAGE or image_format != FORMAT_PNG:
        return None
    try:
        import io

        from PIL import Image
    except ImportError:
        return None
    return ("PNG", Image.open(io.BytesIO(bytes(frame[8:]))), 512)


NODE_CLASS_MAPPINGS = {"FacesyncLipSync": FacesyncLipSync}
NODE_DISPLAY_NAME_MAPPINGS = {"FacesyncLipSync": "facesync lip sync"}
