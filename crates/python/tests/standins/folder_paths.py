"""Stand-in of ComfyUI's ``folder_paths`` (0.12.1): the temp directory and the model folders,
rooted at ``FACESYNC_TEST_COMFY_DIR`` (a test's temporary directory)."""

import os

base_path = os.environ.get("FACESYNC_TEST_COMFY_DIR", os.getcwd())
models_dir = os.path.join(base_path, "models")
folder_names_and_paths = {}


def get_temp_directory():
    return os.path.join(base_path, "temp")


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    paths, exts = folder_names_and_paths.get(folder_name, ([], set()))
    if full_folder_path not in paths:
        paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)
    folder_names_and_paths[folder_name] = (paths, exts)


def get_folder_paths(folder_name):
    return list(folder_names_and_paths.get(folder_name, ([], set()))[0])


def get_filename_list(folder_name):
    out = set()
    for path in get_folder_paths(folder_name):
        if os.path.isdir(path):
            for root, _, files in os.walk(path):
                for f in files:
                    out.add(os.path.relpath(os.path.join(root, f), path))
    return sorted(out)


def get_full_path(folder_name, filename):
    for path in get_folder_paths(folder_name):
        full = os.path.join(path, filename)
        if os.path.isfile(full):
            return full
    return None
