"""Stand-in of ``comfy_api.latest._input_impl.VideoFromFile`` (ComfyUI 0.12.1): a VIDEO backed
by a file; ``get_stream_source()`` gives its path."""


class VideoFromFile:
    def __init__(self, file):
        self.__file = file

    def get_stream_source(self):
        if isinstance(self.__file, str):
            return self.__file
        self.__file.seek(0)
        return self.__file
