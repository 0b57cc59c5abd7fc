"""Argument checks for every tfllm module: each returns the checked value or raises a
`ValueError` that names the argument and quotes the value received."""

import math
import numbers


def check_int(name, value, minimum=None, maximum=None):
    """An integer (Python or NumPy, not bool) in `[minimum, maximum]`, returned as `int`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            bounds = f">= {minimum}"
        elif minimum is None:
            bounds = f"<= {maximum}"
        else:
            bounds = f"in [{minimum}, {maximum}]"
        raise ValueError(f"`{name}` must be {bounds}. Received: {name}={value!r}")
    return int(value)


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def check_number(name, value):
    """A finite real number (not bool), returned as `float`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    return float(value)


def check_positive_float(name, value):
    """A finite number > 0, returned as `float`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
        raise ValueError(f"`{name}` must be a finite number > 0. Received: {name}={value!r}")
    return float(value)


def check_rate(name, value):
    """A rate in [0, 1), returned as `float`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def check_probability(name, value):
    """A probability in (0, 1], returned as `float`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value <= 1.0:
        raise ValueError(f"`{name}` must be a float in (0, 1]. Received: {name}={value!r}")
    return float(value)


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_token_id(name, value, vocabulary_size):
    """A token id in `[0, vocabulary_size)`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < vocabulary_size:
        raise ValueError(f"`{name}` must hold token ids in [0, {vocabulary_size}). Received: {name}={value!r}")
    return int(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}")
    return value


def check_activation(value):
    """Accepts `"gelu_approximate"` (GPT-2's tanh GELU) or any Keras activation name."""
    import keras

    if value == "gelu_approximate":
        return value
    if not isinstance(value, str):
        raise ValueError(f"`activation` must be given by name (a string). Received: activation={value!r}")
    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise ValueError(
            "`activation` must be 'gelu', 'gelu_approximate' or another Keras activation name. "
            f"Received: activation={value!r}"
        ) from None
    return value


def activation_function(name):
    """The activation function for a name accepted by `check_activation`."""
    import keras

    if name == "gelu_approximate":
        return lambda x: keras.activations.gelu(x, approximate=True)
    return keras.activations.get(name)
