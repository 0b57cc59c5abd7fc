"""The public data sets the examples default to: a local path is used as is, else one download.

Every function takes the local path first; only without one does it call
`keras.utils.get_file`, which downloads once into `~/.keras/datasets` (and needs the
network). Offline, pass the path of a copy.
"""

import os

import keras

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SST2_URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"


def _local(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file: {path}")
    return path


def tiny_shakespeare(path=None):
    """The path of Tiny Shakespeare (karpathy/char-rnn's input.txt)."""
    if path:
        return _local(path, "Tiny Shakespeare")
    return keras.utils.get_file("tinyshakespeare.txt", origin=TINY_SHAKESPEARE_URL)


def sst2(split="train", path=None):
    """The path of GLUE SST-2's `train.tsv` or `dev.tsv` (header `sentence<TAB>label`)."""
    if split not in ("train", "dev"):
        raise ValueError(f"`split` must be 'train' or 'dev'. Received: split={split!r}")
    if path:
        return _local(path, f"SST-2 {split}")
    directory = keras.utils.get_file("SST-2.zip", origin=SST2_URL, extract=True)
    return _local(os.path.join(directory, "SST-2", f"{split}.tsv"), f"SST-2 {split}")
