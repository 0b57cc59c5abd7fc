"""Argument checks shared by the layers and model builders: each names the argument and the value."""

import keras


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def check_positive_float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def check_activation(value):
    """Accepts `"gelu_approximate"` (GPT-2's tanh GELU) or any Keras activation name."""
    if value == "gelu_approximate":
        return value
    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise ValueError(
            "`activation` must be 'gelu', 'gelu_approximate' or another Keras activation name. "
            f"Received: activation={value!r}"
        ) from None
    if not isinstance(value, str):
        raise ValueError(f"`activation` must be given by name (a string). Received: activation={value!r}")
    return value


def get_activation(name):
    """The activation function for a name accepted by `check_activation`."""
    if name == "gelu_approximate":
        return lambda x: keras.activations.gelu(x, approximate=True)
    return keras.activations.get(name)
