"""facesync: the lip-sync pipeline and its non-blocking progress system, from Python.

``run(video, audio, out, **options, on_event=callable)`` runs the Rust pipeline with the GIL
released; Ctrl-C (``KeyboardInterrupt``), ``CancelToken.cancel()`` or a true
``interrupted()`` stops it, leaving no output file. ``on_event`` receives each progress event
as a dict (JSON schema v1, see ``SCHEMA_VERSION``) on the calling thread, which wakes every
20 ms to deliver them; an exception it raises cancels the run and is re-raised by ``run()``.
``run_frames(frames, fps, audio, sample_rate)`` does the same on numpy arrays, borrowed
without copies, and returns the frames as a new float32 array.

Both take the run options as keywords (``**options``): ``resolution``, ``steps``, ``chunk``,
``no_face``, ``backend``, ``length``, ``model``, ``model_weight``, ``silence_threshold`` (dBFS
or ``"off"``), with the names, values and
limits of the command line and queue jobs; ``options_schema()`` lists them (kind, default,
range, help), which is what the ComfyUI node builds its inputs from. ``model`` is
``"builtin"`` (the default, no runtime needed), ``"wav2lip:PATH"`` (a Wav2Lip-96 ONNX file),
``"edtalk:PATH"`` (an EDTalk-256 ONNX file) or ``"latentsync:DIR"`` (a LatentSync ONNX export
folder, with ``resolution=256``); learned models run under ONNX Runtime (``ORT_DYLIB_PATH``,
or the ``onnxruntime`` Python package) and stay loaded for the next runs. Importing facesync
points ``ORT_DYLIB_PATH`` (when it is unset) at the ``onnxruntime`` package of the interpreter
it runs in, so that a host started as ``venv/bin/python main.py`` without an activated
environment (ComfyUI's portable builds) finds the package it installed. An unknown option
raises ``TypeError`` and a bad value ``ValueError`` before any work; a model that cannot be
loaded raises ``ModelError`` naming its file (``OnnxRuntimeMissing``, a subclass, when ONNX
Runtime itself is not found).

``facesync.progress.Progress`` is a tqdm-compatible bar backed by the same progress system.

Example::

    import facesync
    video, audio = facesync.write_sample("sample", seconds=2, size=256)
    summary = facesync.run(video, audio, "sample/out.y4m", on_event=print)
    print(summary["frames"], "frames written to", summary["output"])
"""

from ._native import (
    SCHEMA_VERSION,
    __version__,
    CancelToken,
    Cancelled,
    FacesyncError,
    ModelError,
    OnnxRuntimeMissing,
    options_schema,
    run,
    run_frames,
    write_sample,
    write_wav,
)
from .progress import Progress


def _onnxruntime_of_this_interpreter():
    """The library of the ``onnxruntime`` package this interpreter would import (found without
    importing it), or ``None``. facesync's own search asks ``python3`` on ``PATH`` and
    ``$VIRTUAL_ENV``, which are not this interpreter when a host runs its own Python without
    activating its environment."""
    import importlib.util
    import os

    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    capi = os.path.join(list(spec.submodule_search_locations)[0], "capi")
    try:
        names = os.listdir(capi)
    except OSError:
        return None
    libs = sorted(n for n in names if n.startswith("libonnxruntime.so")
                  or (n.startswith("libonnxruntime.") and n.endswith(".dylib")))
    return os.path.join(capi, libs[-1]) if libs else None


def _point_at_this_interpreters_onnxruntime():
    import os

    if not os.environ.get("ORT_DYLIB_PATH"):
        library = _onnxruntime_of_this_interpreter()
        if library:
            os.environ["ORT_DYLIB_PATH"] = library


_point_at_this_interpreters_onnxruntime()

__all__ = [
    "SCHEMA_VERSION",
    "__version__",
    "CancelToken",
    "Cancelled",
    "FacesyncError",
    "ModelError",
    "OnnxRuntimeMissing",
    "Progress",
    "options_schema",
    "run",
    "run_frames",
    "write_sample",
    "write_wav",
]
