"""The one layer-test helper every layer test calls (the pattern of keras-hub's `run_layer_test`)."""

import os

import keras
import numpy as np
from keras import ops


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights=0,
    call_kwargs=None,
    tmp_path=None,
):
    """Checks what every tfllm layer must do.

    - `get_config` round trip, directly and through Keras serialization;
    - eager output shape and weight counts;
    - symbolic output shape inside a Functional model;
    - one `jit_compile=True` training step that changes the weights;
    - `.keras` save and reload giving identical outputs (when `tmp_path` is given);
    - under `mixed_bfloat16`: bfloat16 outputs, float32 variables.

    Args:
        input_data: dict of the call's tensor arguments; `"inputs"` is the first.
        call_kwargs: non-tensor call arguments.
    """
    call_kwargs = call_kwargs or {}
    inputs = input_data["inputs"]
    tensor_kwargs = {k: v for k, v in input_data.items() if k != "inputs"}

    # Config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    assert layer_cls.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls
    assert revived.get_config() == config

    # Eager call.
    outputs = layer(inputs, **tensor_kwargs, **call_kwargs)
    assert tuple(outputs.shape) == tuple(expected_output_shape)
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    assert np.all(np.isfinite(ops.convert_to_numpy(ops.cast(outputs, "float32"))))

    # Symbolic call inside a Functional model.
    symbolic = {
        name: keras.Input(shape=tuple(np.shape(value))[1:], dtype=_dtype_name(value), name=name)
        for name, value in input_data.items()
    }
    layer = layer_cls(**init_kwargs)
    symbolic_outputs = layer(
        symbolic["inputs"], **{k: symbolic[k] for k in tensor_kwargs}, **call_kwargs
    )
    assert tuple(symbolic_outputs.shape) == (None, *expected_output_shape[1:])
    model = keras.Model(symbolic, symbolic_outputs)

    # One compiled training step.
    before = [ops.convert_to_numpy(w) for w in layer.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=True)
    target = np.ones(expected_output_shape, "float32")
    history = model.fit(input_data, target, batch_size=expected_output_shape[0], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [ops.convert_to_numpy(w) for w in layer.trainable_weights]
    if before:
        assert any(not np.allclose(b, a) for b, a in zip(before, after)), "a training step changed no weight"

    # Save and reload.
    if tmp_path is not None:
        path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        np.testing.assert_allclose(
            ops.convert_to_numpy(reloaded(input_data)), ops.convert_to_numpy(model(input_data)), atol=1e-6
        )

    # Mixed precision.
    layer = layer_cls(**init_kwargs, dtype="mixed_bfloat16")
    outputs = layer(inputs, **tensor_kwargs, **call_kwargs)
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    for weight in layer.weights:
        assert keras.backend.standardize_dtype(weight.dtype) == "float32", weight.path


def _dtype_name(value):
    return keras.backend.standardize_dtype(getattr(value, "dtype", np.asarray(value).dtype))


def to_numpy(x):
    return ops.convert_to_numpy(ops.cast(x, "float32"))
