"""What every tfllm model class shares: config as attributes, `get_config`/`from_config`, presets.

`Backbone` (GPT, BERT) and `Task` (a backbone with a head) follow keras-hub's pattern: a
registered subclass of `keras.Model` whose `__init__` builds a Functional graph and calls
`super().__init__(inputs, outputs)`, then keeps its config as attributes. So a model knows its
own sizes (`model.num_layers`), reloads from `.keras` with nothing but `import tfllm`, and no
module looks a layer up by name.
"""

import keras

from tfllm._validation import check_positive_float, check_positive_int, check_rate
from tfllm.layers import HashDropout, PositionalEmbedding, ReversibleEmbedding, TransformerBlock
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


class Backbone(keras.Model):
    """Base of `GPT` and `BERT`: a Functional model built from a keyword config.

    Subclasses set `presets` (name -> config) and `defaults` (every config key with its
    default, `None` where the user must give one), build their graph in `__init__` from
    `self.resolve_config(preset, config)`, and call `super().__init__(inputs, outputs,
    config=config, ...)`.
    """

    presets = {}
    defaults = {}

    def __init__(self, inputs, outputs, *, config, dtype=None, **kwargs):
        super().__init__(inputs, outputs, **kwargs)
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)
        for key, value in config.items():
            setattr(self, key, value)

    @classmethod
    def resolve_config(cls, preset, overrides):
        """`defaults`, updated by the preset's config, then by `overrides`, checked.

        Every key must be known, every size a positive integer and the heads must divide the
        hidden size; otherwise a `ValueError` names the argument and the value.
        """
        model_name = cls.__name__
        config = dict(cls.defaults)
        if preset is not None:
            if preset not in cls.presets:
                other = " (a preset of another model)" if preset in PRESETS else ""
                raise ValueError(
                    f"Unknown {model_name} preset {preset!r}{other}. Available: {', '.join(sorted(cls.presets))}"
                )
            config.update(cls.presets[preset])
        unknown = sorted(set(overrides) - set(cls.defaults))
        if unknown:
            raise ValueError(
                f"Unknown {model_name} config argument(s) {', '.join(unknown)}. Known: {', '.join(cls.defaults)}"
            )
        config.update(overrides)
        missing = [key for key, value in config.items() if value is None]
        if missing:
            raise ValueError(
                f"{model_name} needs {', '.join(missing)}: give a `preset` or pass them as keyword arguments."
            )
        for key in _POSITIVE_INTS:
            if key in config:
                config[key] = check_positive_int(key, config[key])
        config["dropout"] = check_rate("dropout", config["dropout"])
        config["layer_norm_epsilon"] = check_positive_float("layer_norm_epsilon", config["layer_norm_epsilon"])
        if config["hidden_dim"] % config["num_heads"]:
            raise ValueError(
                "`num_heads` must divide `hidden_dim`. "
                f"Received: num_heads={config['num_heads']}, hidden_dim={config['hidden_dim']}"
            )
        return config

    @staticmethod
    def embedding_layers(config, initializer, dtype):
        """The token embedding (also the tied output projection), the learned positions and
        the embeddings' dropout, as GPT-2 and BERT both have them."""
        token_embedding = ReversibleEmbedding(
            config["vocabulary_size"],
            config["hidden_dim"],
            embeddings_initializer=initializer,
            dtype=dtype,
            name="token_embedding",
        )
        position_embedding = PositionalEmbedding(
            config["max_sequence_length"], initializer=initializer, dtype=dtype, name="position_embedding"
        )
        embeddings_dropout = HashDropout(config["dropout"], dtype=dtype, name="embeddings_dropout")
        return token_embedding, position_embedding, embeddings_dropout

    @staticmethod
    def transformer_blocks_for(config, initializer, dtype, **architecture):
        """`num_layers` blocks of the config's sizes; `architecture` sets `activation`,
        `normalize_first` and `causal`."""
        return [
            TransformerBlock(
                num_heads=config["num_heads"],
                intermediate_dim=config["intermediate_dim"],
                dropout=config["dropout"],
                fused_attention=config["fused_attention"],
                layer_norm_epsilon=config["layer_norm_epsilon"],
                kernel_initializer=initializer,
                dtype=dtype,
                name=f"transformer_block_{i}",
                **architecture,
            )
            for i in range(config["num_layers"])
        ]

    @classmethod
    def from_preset(cls, preset, **overrides):
        """The model of a named size from `tfllm.models.PRESETS`, with `overrides` applied.

        `GPT.from_preset("gpt2-small", dropout=0.0)` is `GPT("gpt2-small", dropout=0.0)`.
        Weights are freshly initialised; pretrained weights come from
        `tfllm.convert.from_huggingface`.
        """
        return cls(preset, **overrides)

    def get_config(self):
        # Not Functional's config (a graph of layers): the keyword config `__init__` takes.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            **{key: getattr(self, key) for key in self.defaults},
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


class Task(keras.Model):
    """Base of the task models: a backbone called as one nested layer, plus a head.

    Subclasses build `inputs -> self.backbone(...) -> head -> outputs` in `__init__` and call
    `super().__init__(inputs, outputs, backbone=backbone, config=config, ...)`, where
    `config` holds the head's own keyword arguments. `get_config` stores the backbone's
    config with them, so `from_config` (and `.keras` loading) rebuilds the whole model.
    """

    def __init__(self, inputs, outputs, *, backbone, config, **kwargs):
        super().__init__(inputs, outputs, **kwargs)
        self.backbone = backbone
        self._head_config = dict(config)
        for key, value in config.items():
            setattr(self, key, value)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            **self._head_config,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
