"""Type stub of ``facesync._native`` (the Rust extension module): the pipeline functions and
their options. ``Progress`` is typed by ``facesync/progress.py``'s docs; the rest of the module
is left to ``__getattr__``."""

from collections.abc import Callable
from os import PathLike
from typing import Any, Literal, TypedDict

from typing_extensions import Unpack

import numpy as np
import numpy.typing as npt

SCHEMA_VERSION: int
__version__: str

class FacesyncError(Exception):
    """A facesync run failed; the message names the input and the problem."""

class ModelError(FacesyncError):
    """The lip-sync model cannot be loaded; the message names the file."""

class OnnxRuntimeMissing(ModelError):
    """A learned model needs ONNX Runtime and none was found."""

class Cancelled(FacesyncError):
    """The run was cancelled (cancel handle, a sink, or ComfyUI's interrupt)."""

class CancelToken:
    def __init__(self) -> None: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

#: ``builtin`` (facesync's own mouth model, no runtime needed), ``wav2lip:PATH`` (Wav2Lip-96
#: ONNX file), ``edtalk:PATH`` (EDTalk-256 ONNX file) or ``latentsync:DIR`` (LatentSync ONNX
#: export folder: unet.onnx, vae_encoder.onnx, vae_decoder.onnx, whisper_tiny.onnx; needs
#: ``resolution=256``). Learned models run under ONNX Runtime (``ORT_DYLIB_PATH``, or the
#: ``onnxruntime`` Python package); a loaded model is kept for the next runs.
ModelSpec = str

class RunOptions(TypedDict, total=False):
    """The run options of :func:`run` and :func:`run_frames`, as keywords; a test checks these
    names and types against :func:`options_schema` (the Rust schema they come from)."""

    resolution: Literal[256, 512]
    steps: int
    chunk: int
    no_face: Literal["pass", "error", "interpolate"]
    backend: Literal["auto", "gpu", "cpu"]
    length: Literal["loop", "trim"]
    model: ModelSpec
    model_weight: float
    silence_threshold: float | Literal["off"]

def options_schema() -> list[dict[str, Any]]:
    """The run options: ``name``, ``kind`` (``int``/``float``/``choice``/``text``/``level``: a
    number or the word in ``off``), ``default``, ``min``/``max``, ``choices``, ``off``,
    ``help``, ``value_name``."""

def run(
    video: str | PathLike[str],
    audio: str | PathLike[str],
    out: str | PathLike[str],
    *,
    console: bool = False,
    on_event: Callable[[dict[str, Any]], object] | None = None,
    interrupted: Callable[[], bool] | None = None,
    cancel: CancelToken | None = None,
    tick: float = 0.1,
    nice: int = 0,
    **options: Unpack[RunOptions],
) -> dict[str, Any]:
    """Runs the pipeline on files; returns ``{"output", "frames", "fps", "input_frames",
    "elapsed"}``. ``options``: :class:`RunOptions` (an unknown one raises ``TypeError``, a bad
    value ``ValueError``, before any work); a model that cannot be loaded raises
    :class:`ModelError` naming the file. ``nice`` (0 to 19; Linux) lowers the CPU priority of
    the run's threads, not the caller's: a server keeps its event loop responsive."""

def run_frames(
    frames: npt.NDArray[np.float32],
    fps: float,
    audio: npt.NDArray[np.float32],
    sample_rate: int,
    *,
    console: bool = False,
    on_event: Callable[[dict[str, Any]], object] | None = None,
    interrupted: Callable[[], bool] | None = None,
    cancel: CancelToken | None = None,
    tick: float = 0.1,
    nice: int = 0,
    **options: Unpack[RunOptions],
) -> npt.NDArray[np.float32]:
    """The pipeline on frames in memory: ``frames`` [count, height, width, 1|3|4] float32 in
    0..1, ``audio`` [channels, samples] float32; returns [n, height, width, 3] float32 as long
    as the audio. Same keywords as :func:`run`."""

def write_sample(
    dir: str | PathLike[str], *, seconds: float = 4.0, size: int = 512, fps: int = 25
) -> tuple[str, str]: ...
def write_wav(
    path: str | PathLike[str], audio: npt.NDArray[np.float32], sample_rate: int
) -> None: ...
def __getattr__(name: str) -> Any: ...
