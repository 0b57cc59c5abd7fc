"""int8 weights for tfllm models, chosen for serving on CPUs.

`quantize(model)` is `model.quantize("int8")` with weight-only int8: each Dense and Embedding
kernel is stored as int8 with one float scale per output channel (a quarter of the float32
bytes) and cast back to float where it is used, while activations stay float. On CPUs this
serves at about float32 speed: TensorFlow's CPU kernels for int8 x int8 products (what Keras's
default int8 config computes, quantizing each layer's inputs on the fly) run several times
slower than its float32 matmul. `activations=True` gives Keras's default, for hardware with
fast int8 products.
"""

from tfllm.models.backbone import int8_config


def quantize(model, mode="int8", activations=False):
    """Quantizes `model` (a tfllm `Backbone` or `Task`) in place and returns it. The setting
    is saved with it: its `.keras` file reloads quantized. Raises on a model that is already
    quantized or has LoRA adapters (merge them first: `merge_lora`)."""
    if mode != "int8":
        raise ValueError(f"tfllm models quantize to 'int8'. Received: mode={mode!r}")
    model.quantize(mode, config=int8_config(activations))
    return model
