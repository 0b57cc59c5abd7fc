"""Resolves `preset` + keyword overrides into a validated config for a model builder."""

from tfllm.layers._validation import check_positive_float, check_positive_int, check_rate
from tfllm.models.presets import PRESETS

_POSITIVE_INTS = (
    "vocabulary_size",
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "max_sequence_length",
    "num_segments",
)


def resolve_config(model_name, presets, defaults, preset, overrides):
    """Returns `defaults`, updated by the preset's config, updated by `overrides`.

    Every key must be known, every size a positive integer, the heads must divide the
    hidden size; otherwise a `ValueError` names the argument and the value.
    """
    config = dict(defaults)
    if preset is not None:
        if preset not in presets:
            other = " (a preset of another model)" if preset in PRESETS else ""
            raise ValueError(
                f"Unknown {model_name} preset {preset!r}{other}. Available: {', '.join(sorted(presets))}"
            )
        config.update(presets[preset])
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(
            f"Unknown {model_name} config argument(s) {', '.join(unknown)}. Known: {', '.join(defaults)}"
        )
    config.update(overrides)
    missing = [key for key, value in config.items() if value is None]
    if missing:
        raise ValueError(
            f"{model_name} needs {', '.join(missing)}: give a `preset` or pass them as keyword arguments."
        )
    for key in _POSITIVE_INTS:
        if key in config:
            check_positive_int(key, config[key])
    check_rate("dropout", config["dropout"])
    check_positive_float("layer_norm_epsilon", config["layer_norm_epsilon"])
    if config["hidden_dim"] % config["num_heads"]:
        raise ValueError(
            "`num_heads` must divide `hidden_dim`. "
            f"Received: num_heads={config['num_heads']}, hidden_dim={config['hidden_dim']}"
        )
    return config
