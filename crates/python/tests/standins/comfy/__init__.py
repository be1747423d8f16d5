"""Stand-ins of the ComfyUI modules the facesync nodes use, for tests without a ComfyUI server.

Each mirrors ComfyUI 0.12.1 (the vendored ``comfyui-0.12.1.tar.gz``) where the node touches it:
``comfy.utils.ProgressBar`` with its throttle and global hook, ``comfy.model_management``'s
interrupt flag, ``server.PromptServer.instance.send_progress_text`` and the V3 schema of
``comfy_api.latest``. The tests install a hook that does what ComfyUI's ``main.py`` hook does
first (raise when processing was interrupted) and records every call.
"""
