"""A stand-in of the two ComfyUI modules the facesync node uses, for tests without ComfyUI.

Only what the node calls, with ComfyUI's behaviour: ``ProgressBar(total)`` with
``update_absolute(value, total, preview)`` (which, as in ComfyUI, first raises if processing
was interrupted) recording each call, and the interrupt flag of ``model_management``.
"""
