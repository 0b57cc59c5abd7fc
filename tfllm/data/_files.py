"""Input-file checks shared by the pipelines: errors name the file."""

import os


def check_files(files):
    """Returns `files` as a list of paths, each an existing, non-empty file."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    files = [os.fspath(path) for path in files]
    if not files:
        raise ValueError("No input files were given.")
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Input file not found: {path}")
        if os.path.getsize(path) == 0:
            raise ValueError(f"Input file is empty: {path}")
    return files
