"""Stand-in of ComfyUI's ``comfy_api`` package (0.12.1): only ``comfy_api.latest``."""
