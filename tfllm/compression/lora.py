"""LoRA adapters of a tfllm model: saved alone, loaded back, merged into the kernels.

`model.enable_lora(rank)` (a `Backbone` or a `Task`) puts the adapters on; these functions
handle what comes after training:

- `save_lora(model, path)`: the adapters and the task head (every trainable weight of a
  LoRA model), with the LoRA settings, as one safetensors file: a few hundred kilobytes for
  MiniLM where the model takes 90 MB.
- `load_lora(model, path)`: into a model of the same shapes, enabling LoRA with the file's
  settings where it is not on yet. Every name and shape is checked before anything changes.
- `merge_lora(model)`: a new model of the same class without adapters, each adapted kernel
  replaced by `kernel + A @ B * alpha / rank`, so an export of it has no extra ops.
"""

import copy
import json
import os

import numpy as np
from keras import ops

from tfllm.models.backbone import Backbone, Task

FORMAT = "tfllm-lora"


def save_lora(model, path):
    """Writes `model`'s trainable weights (the LoRA adapters and the task head) to the
    safetensors file `path`, the LoRA settings in its metadata. Returns `path`."""
    from safetensors.numpy import save_file

    settings = _settings(model)
    tensors = {weight.path: np.ascontiguousarray(ops.convert_to_numpy(weight)) for weight in model.trainable_weights}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(tensors, path, metadata={"format": FORMAT, "lora": json.dumps(settings), "model": type(model).__name__})
    return path


def load_lora(model, path):
    """Loads a `save_lora` file into `model`, enabling LoRA with the file's settings if the
    model has none. Raises, with the model unchanged, when the file is not a LoRA file, the
    model's LoRA settings differ, or a weight is missing, unexpected or of another shape."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file, safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No LoRA file at {path!r}.")
    try:
        with safe_open(path, "np") as file:
            metadata = file.metadata() or {}
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path!r} is not a readable safetensors file: {error}") from error
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a tfllm LoRA file (no '{FORMAT}' format in its metadata).")
    settings = json.loads(metadata["lora"])
    backbone = _backbone(model)
    if backbone.lora is not None and backbone.lora != settings:
        raise ValueError(f"{path!r} holds LoRA {settings}; the model has LoRA {backbone.lora}.")

    expected = _expected_shapes(model, settings)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{name} {tuple(tensors[name].shape)} (the model's: {expected[name]})"
        for name in sorted(set(expected) & set(tensors))
        if tuple(tensors[name].shape) != expected[name]
    ]
    if missing or unexpected or wrong:
        problems = [
            f"{label}: {', '.join(items[:4])}{', ...' if len(items) > 4 else ''}"
            for label, items in (("missing", missing), ("not in the model", unexpected), ("other shapes", wrong))
            if items
        ]
        raise ValueError(f"{path!r} does not fit this {type(model).__name__}: {'; '.join(problems)}.")

    if backbone.lora is None:
        backbone.enable_lora(**settings)
    for weight in model.trainable_weights:
        weight.assign(tensors[weight.path])
    return model


def merge_lora(model):
    """A new model of `model`'s class and config, without adapters: every adapted kernel is
    `kernel + A @ B * alpha / rank`, every other weight copied. `model` is left as it is."""
    backbone = _backbone(model)
    if backbone.lora is None:
        raise ValueError(f"{model.name} has no LoRA adapters to merge.")
    values = {weight.path: weight for weight in model.weights}
    for block in backbone.transformer_blocks:
        values.update(block.merged_kernels())

    config = copy.deepcopy(model.get_config())
    if isinstance(model, Task):
        config["backbone"]["config"].pop("lora")
    else:
        config.pop("lora")
    merged = type(model).from_config(config)
    for weight in merged.weights:
        weight.assign(ops.cast(values[weight.path], weight.dtype))
    return merged


def _backbone(model):
    if isinstance(model, Task):
        return model.backbone
    if isinstance(model, Backbone):
        return model
    raise ValueError(f"LoRA works on tfllm models (a Backbone or a Task); received a {type(model).__name__}.")


def _settings(model):
    settings = _backbone(model).lora
    if settings is None:
        raise ValueError(f"{model.name} has no LoRA adapters: call `model.enable_lora(rank)` first.")
    return settings


def _expected_shapes(model, settings):
    """`{weight path: shape}` of the trainable weights `model` has (or would have) with LoRA
    of `settings` on."""
    backbone = _backbone(model)
    rank = settings["rank"]
    shapes = {}
    for block in backbone.transformer_blocks:
        sizes = block._lora_shapes()
        for target in settings["targets"]:
            inputs, outputs = sizes[target]
            shapes[f"{block.name}/lora_{target}_a"] = (inputs, rank)
            shapes[f"{block.name}/lora_{target}_b"] = (rank, outputs)
    backbone_weights = {id(weight) for weight in backbone.weights}
    for weight in model.trainable_weights:
        if id(weight) not in backbone_weights:
            shapes[weight.path] = tuple(weight.shape)
    return shapes
