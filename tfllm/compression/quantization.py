"""Smaller weights for tfllm models, chosen for serving on CPUs.

`quantize(model)` is `model.quantize("int8")` with weight-only int8: each Dense and Embedding
kernel is stored as int8 with one float scale per output channel (a quarter of the float32
bytes) and cast back to float where it is used, while activations stay float. On CPUs this
serves at about float32 speed: TensorFlow's CPU kernels for int8 x int8 products (what Keras's
default int8 config computes, quantizing each layer's inputs on the fly) run several times
slower than its float32 matmul. `activations=True` gives Keras's default, for hardware with
fast int8 products.

`cast(model, "bfloat16")` is the same model with its weights and products in 16 bits (half
the float32 bytes). On a CPU with bfloat16 instructions (AVX512-BF16, AMX) TensorFlow's
oneDNN kernels multiply bfloat16 faster than float32 once a batch has more than a few dozen
tokens; on GPUs, `"float16"` or `"bfloat16"`. `quantize(cast(model, "bfloat16"))` stores int8
weights whose products run in bfloat16.
"""

import copy

from tfllm.models.backbone import Backbone, Task, int8_config

CAST_DTYPES = ("float32", "bfloat16", "float16")


def quantize(model, mode="int8", activations=False):
    """Quantizes `model` (a tfllm `Backbone` or `Task`) in place and returns it. The setting
    is saved with it: its `.keras` file reloads quantized. Raises on a model that is already
    quantized or has LoRA adapters (merge them first: `merge_lora`)."""
    if mode != "int8":
        raise ValueError(f"tfllm models quantize to 'int8'. Received: mode={mode!r}")
    model.quantize(mode, config=int8_config(activations))
    return model


def cast(model, dtype="bfloat16"):
    """A new model of `model`'s class and config whose weights and products are `dtype`
    (`"bfloat16"`, `"float16"` or `"float32"`), every weight copied and rounded to it.

    The logits stay float32 (the task models' outputs say so), and Keras computes layer
    normalization and softmax in float32 inside, whatever the policy. The dtype is part of
    the config: the `.keras` file of the new model reloads in `dtype`. `model` is left as it is.
    Raises on a quantized model or one with LoRA adapters (merge them first: `merge_lora`).
    """
    if dtype not in CAST_DTYPES:
        raise ValueError(f"`dtype` must be one of {CAST_DTYPES}. Received: dtype={dtype!r}")
    if not isinstance(model, (Backbone, Task)):
        raise ValueError(f"`cast` takes a tfllm model (a Backbone or a Task). Received: {type(model).__name__}")
    if model.quantization is not None:
        raise ValueError(f"{model.name} is quantized ({model.quantization}): cast the float model, then quantize.")
    backbone = model.backbone if isinstance(model, Task) else model
    if backbone.lora is not None:
        raise ValueError(f"{model.name} has LoRA adapters: merge them first (tfllm.compression.merge_lora), then cast.")
    config = copy.deepcopy(model.get_config())
    (config["backbone"]["config"] if isinstance(model, Task) else config)["dtype"] = dtype
    new = type(model).from_config(config)
    new.set_weights(model.get_weights())
    return new
