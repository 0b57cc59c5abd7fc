"""Reading and writing the tensor files of a Hugging Face directory, as NumPy arrays.

Safetensors files (one `model.safetensors`, or shards listed by `model.safetensors.index.json`)
are read with `safetensors`' NumPy API: shapes and dtypes come from the file header before any
tensor is read, so a wrong checkpoint is rejected without loading it. A pickled
`pytorch_model.bin` is read only on request (unpickling can run code from the file) and needs
PyTorch.
"""

import contextlib
import json
import os

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"
PICKLE_INDEX_FILE = "pytorch_model.bin.index.json"

# Safetensors dtype names of floating-point tensors; weights of any other dtype are refused.
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


class Checkpoint:
    """The tensors of a checkpoint: names, shapes, and float32 arrays read on demand."""

    def __init__(self, description, shapes, dtypes, read):
        self.description = description
        self._shapes = shapes
        self._dtypes = dtypes
        self._read = read

    def __contains__(self, name):
        return name in self._shapes

    @property
    def names(self):
        return list(self._shapes)

    def shape(self, name):
        return self._shapes[name]

    def is_float(self, name):
        return self._dtypes[name] in _FLOAT_DTYPES

    def dtype(self, name):
        return self._dtypes[name]

    def read(self, name):
        """The tensor `name` as a float32 NumPy array."""
        return self._read(name)


def open_checkpoint(directory, allow_pickle=False):
    """Finds and opens the weights of a Hugging Face directory.

    Args:
        directory: the model directory.
        allow_pickle: bool. Whether a `pytorch_model.bin` (a pickle) may be read when the
            directory has no safetensors file.

    Returns:
        A `Checkpoint`.

    Raises:
        FileNotFoundError: no weights file; or only a pickled one and `allow_pickle=False`.
    """
    single = os.path.join(directory, SAFETENSORS_FILE)
    index = os.path.join(directory, SAFETENSORS_INDEX_FILE)
    if os.path.isfile(single):
        return _open_safetensors([single], single)
    if os.path.isfile(index):
        return _open_safetensors(_shards(directory, index), index)

    pickles = [os.path.join(directory, name) for name in (PICKLE_FILE, PICKLE_INDEX_FILE)]
    found = next((path for path in pickles if os.path.isfile(path)), None)
    if found is None:
        raise FileNotFoundError(
            f"No weights in {os.fspath(directory)!r}: expected {SAFETENSORS_FILE!r} (or sharded "
            f"{SAFETENSORS_INDEX_FILE!r}), or, with allow_pickle=True, {PICKLE_FILE!r}."
        )
    if not allow_pickle:
        raise FileNotFoundError(
            f"{os.fspath(directory)!r} has no {SAFETENSORS_FILE!r}, only the pickled {os.path.basename(found)!r}. "
            "Unpickling can run code stored in the file, so it is off by default: pass allow_pickle=True "
            "if you trust the file (this needs PyTorch: `pip install tfllm[pytorch]`), or convert it to "
            "safetensors."
        )
    if found.endswith(".json"):
        return _open_pickles(_shards(directory, found), found)
    return _open_pickles([found], found)


def _shards(directory, index_path):
    """The shard paths an index lists, each once, in order (the reader finds the names in them)."""
    with open(index_path, encoding="utf-8") as file:
        try:
            weight_map = json.load(file)["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{index_path!r} is not a checkpoint index (a JSON object with a 'weight_map').") from None
    shards = []
    for shard in dict.fromkeys(weight_map.values()):
        path = os.path.join(directory, shard)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"The checkpoint shard {shard!r} listed in {index_path!r} is missing.")
        shards.append(path)
    return shards


def _open_safetensors(paths, description):
    shapes, dtypes, files = {}, {}, {}
    for path in paths:
        with _unreadable_names(path):
            with safe_open(path, framework="np") as file:
                for name in file.keys():
                    piece = file.get_slice(name)
                    shapes[name] = tuple(piece.get_shape())
                    dtypes[name] = piece.get_dtype()
                    files[name] = path

    def read(name):
        with _unreadable_names(files[name]):
            if dtypes[name] == "BF16":
                return _read_bfloat16(files[name], name)
            with safe_open(files[name], framework="np") as file:
                return np.asarray(file.get_tensor(name), dtype=np.float32)

    return Checkpoint(description, shapes, dtypes, read)


@contextlib.contextmanager
def _unreadable_names(path):
    """Re-raises what the safetensors reader raises on a damaged file as a `ValueError` that
    names the file (its own errors name neither the file nor the directory)."""
    try:
        yield
    except (SafetensorError, OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path!r} is not a readable safetensors file (truncated or damaged?): "
            f"{type(error).__name__}: {error}"
        ) from error


def _read_bfloat16(path, name):
    """NumPy has no bfloat16: read the raw 16-bit words and widen them to float32.

    A safetensors file is an 8-byte little-endian header length, a JSON header giving each
    tensor's byte range within the data that follows, then the data.
    """
    with open(path, "rb") as file:
        header_length = int.from_bytes(file.read(8), "little")
        entry = json.loads(file.read(header_length))[name]
        begin, end = entry["data_offsets"]
        file.seek(8 + header_length + begin)
        data = file.read(end - begin)
        if len(data) != end - begin:
            raise ValueError(f"the tensor {name!r} ends past the end of the file")
        words = np.frombuffer(data, dtype="<u2")
    return (words.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def _open_pickles(paths, description):
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading {os.path.basename(description)!r} needs PyTorch: `pip install tfllm[pytorch]`."
        ) from None
    tensors = {}
    for path in paths:
        # `weights_only=True` still unpickles, but refuses anything but tensors and containers.
        tensors.update(torch.load(path, map_location="cpu", weights_only=True))
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    names = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    dtypes = {name: names.get(tensor.dtype, str(tensor.dtype)) for name, tensor in tensors.items()}

    def read(name):
        return tensors[name].detach().to(torch.float32).numpy()

    return Checkpoint(description, shapes, dtypes, read)


def write_safetensors(path, tensors):
    """Writes `{name: array}` as a safetensors file that `transformers` loads (PyTorch format tag)."""
    tensors = {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in tensors.items()}
    save_file(tensors, path, metadata={"format": "pt"})
