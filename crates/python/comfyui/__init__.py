"""facesync lip sync as ComfyUI custom nodes.

Install: ``pip install facesync`` into ComfyUI's Python, then copy or link this folder into
``ComfyUI/custom_nodes/facesync`` (see docs/guide.md in the repository).

Two nodes:

- **facesync lip sync** (``FacesyncLipSync``): IMAGE batch + AUDIO -> IMAGE batch, as long as
  the audio (a shorter video plays ping-pong). The batch goes to Rust without a copy and the
  result comes back as one float tensor, filled chunk by chunk while the pipeline runs.
- **facesync lip sync (video)** (``FacesyncLipSyncVideo``): VIDEO (what ``Load Video`` gives)
  + optional AUDIO -> VIDEO. facesync decodes the file and writes the result to a file; a long
  clip never exists as a float tensor.

Both report from their first to their last second (see ``lipsync.py``) and stop within a
fraction of a second when the queue is interrupted.

Node APIs: the V3 schema (``comfy_api.latest``, ComfyUI 0.3.44 and newer; tested on 0.12.1)
when ComfyUI has it, the V1 mappings (``NODE_CLASS_MAPPINGS``) on older versions.
"""

from . import lipsync

CATEGORY = "facesync"
DESCRIPTION = (
    "Lip-syncs the faces of a video to an audio track with facesync (Rust): the mouth region "
    "of each face is regenerated from the audio and pasted back. Progress, previews and "
    "interrupts work throughout; the output lasts as long as the audio."
)
VIDEO_DESCRIPTION = (
    "Lip-syncs a VIDEO (as Load Video gives it) to an AUDIO track, or to its own sound: "
    "facesync decodes the file and writes the result to a file, so a long clip never sits in "
    "memory as frames."
)

# (name, kind, options, tooltip): one source for both node APIs.
OPTIONS = [
    ("resolution", "combo", {"options": ["256", "512"], "default": "256"},
     "Size of the aligned face crop the model works on: 512 keeps more detail and is slower. "
     "Wav2Lip and EDTalk always get FaceFusion's 512 crop."),
    ("steps", "int", {"default": 20, "min": 1, "max": 200},
     "Refinement steps of the mouth model: more steps, smoother mouths, longer runs."),
    ("no_face", "combo", {"options": ["pass", "interpolate", "error"], "default": "pass"},
     "Frames without a face: pass them through unchanged, interpolate the face position from "
     "the neighbouring frames (gaps up to 12 frames), or stop with an error."),
    ("backend", "combo", {"options": ["auto", "cpu", "gpu"], "default": "auto"},
     "Where the per-pixel stages run: auto picks a hardware GPU if there is one (else the "
     "CPU); gpu forces the GPU even if it is a slow software renderer (a warning says so)."),
]
FPS_TOOLTIP = "Frame rate of the images (GetVideoComponents gives it as its fps output)."
IMAGES_TOOLTIP = "The video frames, an IMAGE batch [frames, height, width, channels]."
AUDIO_TOOLTIP = "The speech the mouths follow; its length sets the output's length."
VIDEO_TOOLTIP = "The video to lip-sync, read from its file by facesync."
VIDEO_AUDIO_TOOLTIP = ("The speech the mouths follow; when not connected, the video's own "
                       "sound track.")


MODEL_TOOLTIP = (
    "The lip-sync model: facesync's built-in one, or a learned one from ComfyUI's "
    "models/facesync folder (needs ONNX Runtime): Wav2Lip-96 or EDTalk-256 as an ONNX file, or "
    "a LatentSync export folder (unet.onnx, unet_weights.pb, vae_encoder.onnx, "
    "vae_decoder.onnx, whisper_tiny.onnx; resolution 256). A loaded model is kept for the "
    "next runs.")
MODEL_FOLDER = "facesync"
#: The files that make a sub-folder of models/facesync a LatentSync export.
LATENTSYNC_FILES = ("unet.onnx", "unet_weights.pb", "vae_encoder.onnx", "vae_decoder.onnx",
                    "whisper_tiny.onnx")


def _model_folder():
    """Registers ``models/facesync`` with ComfyUI (once) and returns its models as choices:
    ``builtin``, then in name order ``wav2lip:<file>`` / ``edtalk:<file>`` for ONNX files
    (EDTalk when the name says so) and ``latentsync:<folder>`` for each sub-folder holding a
    LatentSync export (:data:`LATENTSYNC_FILES`; its files are not offered one by one)."""
    import os

    import folder_paths

    if MODEL_FOLDER not in getattr(folder_paths, "folder_names_and_paths", {}):
        folder_paths.add_model_folder_path(
            MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER), is_default=True)
    names = [n.replace(os.sep, "/") for n in folder_paths.get_filename_list(MODEL_FOLDER)]
    in_folder = {}
    for name in names:
        folder, _, base = name.rpartition("/")
        in_folder.setdefault(folder, set()).add(base)
    latentsync = {folder for folder, files in in_folder.items()
                  if folder and all(f in files for f in LATENTSYNC_FILES)}
    found = [(folder, f"latentsync:{folder}") for folder in latentsync]
    for name in names:
        if name.lower().endswith(".onnx") and name.rpartition("/")[0] not in latentsync:
            kind = "edtalk" if "edtalk" in name.lower() else "wav2lip"
            found.append((name, f"{kind}:{name}"))
    return ["builtin"] + [choice for _, choice in sorted(found)]


def _has_models():
    """Whether this facesync build takes ``model=`` (learned models, from facesync 0.2)."""
    import inspect

    import facesync

    try:
        return "model" in inspect.signature(facesync.run_frames).parameters
    except (TypeError, ValueError):
        return False


def _model_spec(choice):
    """A choice of :func:`_model_folder` as facesync's model spec (the full path of the file,
    or of the LatentSync folder)."""
    if choice in (None, "builtin"):
        return "builtin"
    import os

    import folder_paths

    kind, _, name = choice.partition(":")
    if kind == "latentsync":
        unet = folder_paths.get_full_path(MODEL_FOLDER, f"{name}/{LATENTSYNC_FILES[0]}")
        path = None if unet is None else os.path.dirname(unet)
        if path is not None:
            missing = [f for f in LATENTSYNC_FILES if not os.path.isfile(os.path.join(path, f))]
            if missing:
                raise ValueError(f"model: {name} has no {', '.join(missing)} (a LatentSync "
                                 f"export needs {', '.join(LATENTSYNC_FILES)})")
    else:
        path = folder_paths.get_full_path(MODEL_FOLDER, name)
    if path is None:
        raise ValueError(f"model: {name} is not in ComfyUI's models/{MODEL_FOLDER} folder")
    return f"{kind}:{path}"


def _options(kwargs):
    out = {name: kwargs[name] for name, *_ in OPTIONS if name in kwargs}
    if "model" in kwargs:
        out["model"] = _model_spec(kwargs["model"])
    if "resolution" in out:
        out["resolution"] = int(out["resolution"])
    if "steps" in out:
        out["steps"] = int(out["steps"])
    return out


def _temp_directory():
    import os

    import folder_paths

    path = folder_paths.get_temp_directory()
    os.makedirs(path, exist_ok=True)
    return path


try:
    from comfy_api.latest import ComfyExtension, InputImpl, io
except ImportError:  # ComfyUI without the V3 schema
    io = None

if io is not None:

    def _v3_options():
        inputs = []
        if _has_models():
            # Optional: API workflows saved before the input existed still validate.
            inputs.append(io.Combo.Input("model", options=_model_folder(), default="builtin",
                                         optional=True, tooltip=MODEL_TOOLTIP))
        for name, kind, spec, tooltip in OPTIONS:
            if kind == "combo":
                inputs.append(io.Combo.Input(name, options=spec["options"],
                                             default=spec["default"], tooltip=tooltip))
            else:
                inputs.append(io.Int.Input(name, default=spec["default"], min=spec["min"],
                                           max=spec["max"], tooltip=tooltip))
        return inputs

    class FacesyncLipSync(io.ComfyNode):
        """IMAGE batch + AUDIO in, IMAGE batch out."""

        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="FacesyncLipSync",
                display_name="facesync lip sync",
                category=CATEGORY,
                description=DESCRIPTION,
                inputs=[
                    io.Image.Input("images", tooltip=IMAGES_TOOLTIP),
                    io.Audio.Input("audio", tooltip=AUDIO_TOOLTIP),
                    io.Float.Input("fps", default=25.0, min=1.0, max=240.0, step=0.01,
                                   tooltip=FPS_TOOLTIP),
                    *_v3_options(),
                ],
                outputs=[io.Image.Output(display_name="images",
                                         tooltip="The lip-synced frames, as long as the audio.")],
                hidden=[io.Hidden.unique_id],
            )

        @classmethod
        def execute(cls, images, audio, fps, **kwargs):
            out = lipsync.lipsync_images(cls.hidden.unique_id, images, audio, fps,
                                         _options(kwargs))
            return io.NodeOutput(out)

    class FacesyncLipSyncVideo(io.ComfyNode):
        """VIDEO (+ AUDIO) in, VIDEO out, streamed through facesync's decoder and encoder."""

        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="FacesyncLipSyncVideo",
                display_name="facesync lip sync (video)",
                category=CATEGORY,
                description=VIDEO_DESCRIPTION,
                inputs=[
                    io.Video.Input("video", tooltip=VIDEO_TOOLTIP),
                    io.Audio.Input("audio", optional=True, tooltip=VIDEO_AUDIO_TOOLTIP),
                    *_v3_options(),
                ],
                outputs=[io.Video.Output(display_name="video",
                                         tooltip="The lip-synced video (H.264, with the audio).")],
                hidden=[io.Hidden.unique_id],
            )

        @classmethod
        def execute(cls, video, audio=None, **kwargs):
            path = lipsync.lipsync_video(cls.hidden.unique_id, video, audio,
                                         _options(kwargs), _temp_directory())
            return io.NodeOutput(InputImpl.VideoFromFile(path))

    class FacesyncExtension(ComfyExtension):
        async def get_node_list(self):
            return [FacesyncLipSync, FacesyncLipSyncVideo]

    async def comfy_entrypoint():
        return FacesyncExtension()

else:

    def _v1_model():
        """The model choice, optional as in V3 (older API workflows lack it)."""
        if not _has_models():
            return {}
        return {"model": (_model_folder(), {"default": "builtin", "tooltip": MODEL_TOOLTIP})}

    def _v1_options():
        out = {}
        for name, kind, spec, tooltip in OPTIONS:
            if kind == "combo":
                out[name] = (spec["options"], {"default": spec["default"], "tooltip": tooltip})
            else:
                out[name] = ("INT", {**spec, "tooltip": tooltip})
        return out

    class FacesyncLipSync:
        """IMAGE batch + AUDIO in, IMAGE batch out (V1 API)."""

        DESCRIPTION = DESCRIPTION
        RETURN_TYPES = ("IMAGE",)
        RETURN_NAMES = ("images",)
        FUNCTION = "lipsync"
        CATEGORY = CATEGORY

        @classmethod
        def INPUT_TYPES(cls):
            return {
                "required": {
                    "images": ("IMAGE", {"tooltip": IMAGES_TOOLTIP}),
                    "audio": ("AUDIO", {"tooltip": AUDIO_TOOLTIP}),
                    "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.01,
                                      "tooltip": FPS_TOOLTIP}),
                    **_v1_options(),
                },
                "optional": _v1_model(),
                "hidden": {"unique_id": "UNIQUE_ID"},
            }

        def lipsync(self, images, audio, fps=25.0, unique_id=None, **kwargs):
            return (lipsync.lipsync_images(unique_id, images, audio, fps, _options(kwargs)),)

    NODE_CLASS_MAPPINGS = {"FacesyncLipSync": FacesyncLipSync}
    NODE_DISPLAY_NAME_MAPPINGS = {"FacesyncLipSync": "facesync lip sync"}
