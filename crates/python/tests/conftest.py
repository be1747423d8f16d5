"""Shared fixtures: a tiny built-in sample, and a ComfyUI stand-in with the node loaded."""

import os
import sys
import types

import pytest

import facesync

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """16 frames (0.64 s at 25 fps) of the built-in face sample at 256x256, and its audio."""
    directory = tmp_path_factory.mktemp("sample")
    return facesync.write_sample(str(directory), seconds=0.64, size=256)


@pytest.fixture(scope="session")
def long_sample(tmp_path_factory):
    """4 s of the sample: long enough to be interrupted half-way."""
    directory = tmp_path_factory.mktemp("long_sample")
    return facesync.write_sample(str(directory), seconds=4.0, size=256)


@pytest.fixture
def comfy(monkeypatch, tmp_path):
    """A ComfyUI stand-in (tests/standins, as ComfyUI 0.12.1 has those modules), fresh: a
    ``PromptServer.instance``, a recording progress hook installed as ComfyUI's ``main.py``
    installs its own, and the ``facesync`` custom node loaded as ComfyUI loads it (V3)."""
    import comfy_helpers

    monkeypatch.syspath_prepend(os.path.join(HERE, "standins"))
    monkeypatch.setenv("FACESYNC_TEST_COMFY_DIR", str(tmp_path / "comfyui"))
    comfy_helpers.forget_comfy_modules()
    import comfy.model_management
    import comfy.utils
    import server

    env = types.SimpleNamespace(
        mm=comfy.model_management,
        utils=comfy.utils,
        server=server.PromptServer(),
        hook=comfy_helpers.Hook(comfy.model_management),
    )
    comfy.utils.set_progress_bar_global_hook(env.hook)
    env.node = comfy_helpers.load_node()
    yield env
    comfy_helpers.forget_comfy_modules()
