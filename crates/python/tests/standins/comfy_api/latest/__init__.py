"""Stand-in of ``comfy_api.latest`` (ComfyUI 0.12.1): ``ComfyExtension``, ``io`` (the V3
schema classes the facesync nodes use) and ``InputImpl.VideoFromFile``, with the same names,
signatures and behaviour where the nodes touch them."""

from abc import ABC, abstractmethod

from . import _io as io
from ._input_impl import VideoFromFile


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        pass

    @abstractmethod
    async def get_node_list(self):
        pass


class InputImpl:
    VideoFromFile = VideoFromFile


__all__ = ["ComfyExtension", "InputImpl", "io"]
