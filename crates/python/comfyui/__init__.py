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

#: The run options the nodes show, in this order, and whether each is optional (added after
#: API workflows were saved without it: those still validate). Their kind, default, limits and
#: tooltip come from facesync's own schema (``facesync.options_schema()``, the one the command
#: line and queue jobs use); the others keep their defaults (the node sets ``chunk`` itself),
#: and ``model`` is a list of the files in ``models/facesync`` (see :func:`_model_folder`).
NODE_OPTIONS = (("resolution", False), ("steps", False), ("no_face", False),
                ("backend", False), ("length", True), ("model_weight", True),
                ("silence_threshold", True))


def _schema():
    """facesync's run options by name (``facesync.options_schema()``)."""
    import facesync

    return {option["name"]: option for option in facesync.options_schema()}


def _widgets():
    """``(name, kind, spec, tooltip, optional)`` for each of :data:`NODE_OPTIONS`, from the
    schema: a ``combo`` for choices (a whole number with a few values, the crop size, shows
    them as text, as saved workflows have it), a ``string`` for a level (a number or ``off``:
    the silence threshold), else ``int`` or ``float`` with their limits."""
    schema = _schema()
    out = []
    for name, optional in NODE_OPTIONS:
        option = schema[name]
        kind = option["kind"]
        if "choices" in option:
            spec = {"options": [str(c) for c in option["choices"]],
                    "default": str(option["default"])}
            kind = "combo"
        elif kind == "int":
            spec = {"default": option["default"], "min": option["min"], "max": option["max"]}
        elif kind == "level":
            # A number or the word "off": text (ComfyUI's number widgets hold numbers only).
            spec = {"default": f"{option['default']:g}"}
            kind = "string"
        else:
            spec = {"default": option["default"], "min": option["min"], "max": option["max"],
                    "step": 0.05}
        out.append((name, kind, spec, option["help"] + ".", optional))
    return out


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
    """The node's inputs as facesync's keywords: the model choice as its spec, and the values
    of whole-number options shown as text (the crop size) as numbers."""
    schema = _schema()
    out = {name: kwargs[name] for name, _ in NODE_OPTIONS if name in kwargs}
    for name, value in out.items():
        if schema[name]["kind"] == "int":
            out[name] = int(value)
    if "model" in kwargs:
        out["model"] = _model_spec(kwargs["model"])
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
        # The model is optional: API workflows saved before the input existed still validate.
        inputs = [io.Combo.Input("model", options=_model_folder(), default="builtin",
                                 optional=True, tooltip=MODEL_TOOLTIP)]
        for name, kind, spec, tooltip, optional in _widgets():
            widget = {"combo": io.Combo, "int": io.Int, "float": io.Float,
                      "string": io.String}[kind]
            inputs.append(widget.Input(name, **spec, optional=optional, tooltip=tooltip))
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

    def _v1_options():
        """``(required, optional)`` inputs, as V3's."""
        required = {}
        optional = {"model": (_model_folder(), {"default": "builtin",
                                                "tooltip": MODEL_TOOLTIP})}
        for name, kind, spec, tooltip, is_optional in _widgets():
            if kind == "combo":
                entry = (spec["options"], {"default": spec["default"], "tooltip": tooltip})
            else:
                entry = (kind.upper(), {**spec, "tooltip": tooltip})
            (optional if is_optional else required)[name] = entry
        return required, optional

    class FacesyncLipSync:
        """IMAGE batch + AUDIO in, IMAGE batch out (V1 API)."""

        DESCRIPTION = DESCRIPTION
        RETURN_TYPES = ("IMAGE",)
        RETURN_NAMES = ("images",)
        FUNCTION = "lipsync"
        CATEGORY = CATEGORY

        @classmethod
        def INPUT_TYPES(cls):
            required, optional = _v1_options()
            return {
                "required": {
                    "images": ("IMAGE", {"tooltip": IMAGES_TOOLTIP}),
                    "audio": ("AUDIO", {"tooltip": AUDIO_TOOLTIP}),
                    "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.01,
                                      "tooltip": FPS_TOOLTIP}),
                    **required,
                },
                "optional": optional,
                "hidden": {"unique_id": "UNIQUE_ID"},
            }

        def lipsync(self, images, audio, fps=25.0, unique_id=None, **kwargs):
            return (lipsync.lipsync_images(unique_id, images, audio, fps, _options(kwargs)),)

    NODE_CLASS_MAPPINGS = {"FacesyncLipSync": FacesyncLipSync}
    NODE_DISPLAY_NAME_MAPPINGS = {"FacesyncLipSync": "facesync lip sync"}
