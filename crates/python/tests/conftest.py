"""Shared fixtures: a tiny built-in sample, and the ComfyUI stand-in modules on sys.path."""

import os
import sys

import pytest

import facesync

HERE = os.path.dirname(os.path.abspath(__file__))


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
def comfy_standins(monkeypatch):
    """`comfy.utils` and `comfy.model_management` stand-ins (tests/standins/comfy), fresh."""
    monkeypatch.syspath_prepend(os.path.join(HERE, "standins"))
    for name in ["comfy", "comfy.utils", "comfy.model_management"]:
        sys.modules.pop(name, None)
    import comfy.model_management
    import comfy.utils

    yield comfy
    for name in ["comfy", "comfy.utils", "comfy.model_management"]:
        sys.modules.pop(name, None)
