"""Stand-in of ``comfy_api.latest.io`` (ComfyUI 0.12.1, ``comfy_api/latest/_io.py``): the V3
schema classes the facesync nodes use, with ComfyUI's constructor signatures, and
``ComfyNode.EXECUTE_NORMALIZED`` / ``PREPARE_CLASS_CLONE`` as the executor calls them."""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"


class HiddenHolder:
    def __init__(self, unique_id=None, prompt=None, extra_pnginfo=None, dynprompt=None):
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt

    def __getattr__(self, key):
        return None

    @classmethod
    def from_dict(cls, d):
        d = d or {}
        return cls(unique_id=d.get(Hidden.unique_id), prompt=d.get(Hidden.prompt),
                   extra_pnginfo=d.get(Hidden.extra_pnginfo), dynprompt=d.get(Hidden.dynprompt))


class Input:
    def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None,
                 extra_dict=None, raw_link=None, advanced=None):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}
        self.rawLink = raw_link
        self.advanced = advanced


class WidgetInput(Input):
    def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None,
                 default=None, socketless=None, widget_type=None, force_input=None,
                 extra_dict=None, raw_link=None, advanced=None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, advanced)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input


class Output:
    def __init__(self, id=None, display_name=None, tooltip=None, is_output_list=False):
        self.id = id
        self.display_name = display_name if display_name else id
        self.tooltip = tooltip
        self.is_output_list = is_output_list


def _comfytype(io_type):
    def decorate(cls):
        cls.io_type = io_type
        for part in ("Input", "Output"):
            if hasattr(cls, part):
                getattr(cls, part).io_type = io_type
        return cls
    return decorate


class _TypeIO:
    class Input(Input):
        pass

    class Output(Output):
        pass


@_comfytype("IMAGE")
class Image(_TypeIO):
    class Input(Input):
        pass

    class Output(Output):
        pass


@_comfytype("AUDIO")
class Audio(_TypeIO):
    class Input(Input):
        pass

    class Output(Output):
        pass


@_comfytype("VIDEO")
class Video(_TypeIO):
    class Input(Input):
        pass

    class Output(Output):
        pass


@_comfytype("INT")
class Int(_TypeIO):
    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None,
                     default=None, min=None, max=None, step=None, control_after_generate=None,
                     display_mode=None, socketless=None, force_input=None, extra_dict=None,
                     raw_link=None, advanced=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless,
                             None, force_input, extra_dict, raw_link, advanced)
            self.min, self.max, self.step = min, max, step

    class Output(Output):
        pass


@_comfytype("FLOAT")
class Float(_TypeIO):
    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None,
                     default=None, min=None, max=None, step=None, round=None,
                     display_mode=None, socketless=None, force_input=None, extra_dict=None,
                     raw_link=None, advanced=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless,
                             None, force_input, extra_dict, raw_link, advanced)
            self.min, self.max, self.step, self.round = min, max, step, round

    class Output(Output):
        pass


@_comfytype("STRING")
class String(_TypeIO):
    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None,
                     multiline=False, placeholder=None, default=None, dynamic_prompts=None,
                     socketless=None, force_input=None, extra_dict=None, raw_link=None,
                     advanced=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless,
                             None, force_input, extra_dict, raw_link, advanced)
            self.multiline, self.placeholder = multiline, placeholder

    class Output(Output):
        pass


@_comfytype("COMBO")
class Combo(_TypeIO):
    class Input(WidgetInput):
        def __init__(self, id, options=None, display_name=None, optional=False, tooltip=None,
                     lazy=None, default=None, control_after_generate=None, upload=None,
                     image_folder=None, remote=None, socketless=None, extra_dict=None,
                     raw_link=None, advanced=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless,
                             None, None, extra_dict, raw_link, advanced)
            self.multiselect = False
            if isinstance(options, type) and issubclass(options, Enum):
                options = [v.value for v in options]
            if isinstance(default, Enum):
                default = default.value
            self.options = options
            self.default = default
            self.upload = upload

    class Output(Output):
        pass


@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    search_aliases: list = field(default_factory=list)
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    not_idempotent: bool = False


class NodeOutput:
    def __init__(self, *args: Any, ui=None, expand=None, block_execution=None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args if len(self.args) > 0 else None

    def __getitem__(self, index):
        return self.args[index]


class ComfyNode:
    hidden: HiddenHolder = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        return cls.define_schema()

    @classmethod
    def PREPARE_CLASS_CLONE(cls, v3_data):
        clone = type(cls.__name__, (cls,), {})
        clone.hidden = HiddenHolder.from_dict((v3_data or {}).get("hidden_inputs"))
        return clone

    @classmethod
    def EXECUTE_NORMALIZED(cls, *args, **kwargs) -> NodeOutput:
        to_return = cls.execute(*args, **kwargs)
        if to_return is None:
            to_return = NodeOutput()
        elif isinstance(to_return, tuple):
            to_return = NodeOutput(*to_return)
        return to_return
