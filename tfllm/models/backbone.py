"""What every tfllm model class shares: config as attributes, `get_config`/`from_config`, presets.

`Backbone` (GPT, BERT) and `Task` (a backbone with a head) follow keras-hub's pattern: a
registered subclass of `keras.Model` whose `__init__` builds a Functional graph and calls
`super().__init__(inputs, outputs)`, then keeps its config as attributes. So a model knows its
own sizes (`model.num_layers`), reloads from `.keras` with nothing but `import tfllm`, and no
module looks a layer up by name.
"""

import numbers

import keras

from tfllm._validation import check_positive_float, check_positive_int, check_rate
from tfllm.layers import HashDropout, PositionalEmbedding, ReversibleEmbedding, TransformerBlock
from tfllm.layers.transformer_block import check_lora_targets
from tfllm.models.presets import PRESETS

_POSITIVE_INTS = (
    "vocabulary_size",
    "num_layers",
    "hidden_dim",
    "max_sequence_length",
    "num_segments",
)
# Sizes given once for every block, or as a list of one per block.
_PER_LAYER_INTS = ("num_heads", "intermediate_dim")
# Keys whose default `None` is a choice (not a value the user must give).
_OPTIONAL = ("head_dim",)


def int8_config(activations):
    """Keras's int8 config: per-output-channel abs-max weights, and the inputs quantized on the
    fly too (`activations=True`) or kept float (weight-only)."""
    return keras.quantizers.Int8QuantizationConfig(activation_quantizer="default" if activations else None)


def _quantize(model, mode, config, kwargs):
    """Quantizes every not yet quantized Dense and Embedding layer of `model` as `config` says;
    returns the setting `from_config` needs to do it again."""
    if kwargs:
        raise ValueError(f"Unknown quantize argument(s): {', '.join(kwargs)}")
    if mode != "int8":
        raise ValueError(f"tfllm models quantize to 'int8'. Received: mode={mode!r}")
    if getattr(model, "lora", None) is not None or getattr(getattr(model, "backbone", None), "lora", None):
        raise ValueError(f"{model.name} has LoRA adapters: merge them first (tfllm.compression.merge_lora), then quantize.")
    quantizable = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)
    keras.Model.quantize(
        model,
        mode,
        config=config,
        filters=lambda layer: isinstance(layer, quantizable) and layer.quantization_mode is None,
    )
    return {"mode": mode, "activations": config.activation_quantizer is not None}


def per_layer(size, index):
    """Block `index`'s entry of a per-layer size (a list), or the size itself (an int)."""
    return size[index] if isinstance(size, list) else size


def _check_per_layer(name, value, num_layers):
    """A positive int, or a list of `num_layers` positive ints (a tuple becomes a list)."""
    if not isinstance(value, (list, tuple)):
        return check_positive_int(name, value)
    if len(value) != num_layers:
        raise ValueError(
            f"`{name}` must be an int or a list of one per layer ({num_layers}). Received: {name}={list(value)}"
        )
    if any(isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0 for size in value):
        raise ValueError(f"`{name}` must hold positive integers. Received: {name}={list(value)}")
    return [int(size) for size in value]


class Backbone(keras.Model):
    """Base of `GPT` and `BERT`: a Functional model built from a keyword config.

    Subclasses set `presets` (name -> config) and `defaults` (every config key with its
    default, `None` where the user must give one), build their graph in `__init__` from
    `self.resolve_config(preset, config)`, and call `super().__init__(inputs, outputs,
    config=config, ...)`.

    Per-layer sizes: `num_heads` and `intermediate_dim` take an int (every block) or a list of
    `num_layers` positive ints (block by block, as `tfllm.compression.prune` leaves them).
    `head_dim` (default `None`: `hidden_dim // num_heads`, which must then divide) sets the
    width of every head; a list of `num_heads` needs it. The attributes hold what was
    configured (`model.num_heads` is then the list); each block has its own sizes
    (`model.transformer_blocks[i].num_heads`, `.head_dim`, `.intermediate_dim`).
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

        Every key must be known, every size a positive integer (`num_heads` and
        `intermediate_dim` may be lists of one per layer) and, without `head_dim`, the heads
        must divide the hidden size; otherwise a `ValueError` names the argument and the value.
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
        missing = [key for key, value in config.items() if value is None and key not in _OPTIONAL]
        if missing:
            raise ValueError(
                f"{model_name} needs {', '.join(missing)}: give a `preset` or pass them as keyword arguments."
            )
        for key in _POSITIVE_INTS:
            if key in config:
                config[key] = check_positive_int(key, config[key])
        config["dropout"] = check_rate("dropout", config["dropout"])
        config["layer_norm_epsilon"] = check_positive_float("layer_norm_epsilon", config["layer_norm_epsilon"])
        for key in _PER_LAYER_INTS:
            config[key] = _check_per_layer(key, config[key], config["num_layers"])
        if config.get("head_dim") is not None:
            config["head_dim"] = check_positive_int("head_dim", config["head_dim"])
        elif isinstance(config["num_heads"], list):
            raise ValueError(
                "A list of `num_heads` needs `head_dim`, the width of every head. "
                f"Received: num_heads={config['num_heads']}"
            )
        elif config["hidden_dim"] % config["num_heads"]:
            raise ValueError(
                "`num_heads` must divide `hidden_dim` (or give `head_dim`). "
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
        """`num_layers` blocks of the config's sizes (block `i` takes entry `i` of a per-layer
        list); `architecture` sets `activation`, `normalize_first` and `causal`."""
        return [
            TransformerBlock(
                num_heads=per_layer(config["num_heads"], i),
                intermediate_dim=per_layer(config["intermediate_dim"], i),
                head_dim=config["head_dim"],
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

    def enable_lora(self, rank, alpha=None, targets=("query", "value")):
        """Puts LoRA adapters of `rank` on the `targets` projections of every transformer block
        and freezes every other weight of the backbone, so only the adapters train.

        `targets` are names from `tfllm.layers.transformer_block.LORA_TARGETS`: `"query"`,
        `"key"`, `"value"` (each third of the fused projection on its own),
        `"attention_output"`, `"feedforward_intermediate"`, `"feedforward_output"`. `alpha`
        (default `rank`) scales the update by `alpha / rank`. The adapters are saved with the
        model (`.keras` reloads them) and alone by `tfllm.compression.save_lora`;
        `tfllm.compression.merge_lora` folds them into the kernels. Raises, with the model
        unchanged, on a bad rank or target, a second call, or a quantized model.
        """
        rank = check_positive_int("rank", rank)
        alpha = float(rank) if alpha is None else check_positive_float("alpha", alpha)
        targets = check_lora_targets(targets)
        if self.lora is not None:
            raise ValueError(f"LoRA is already enabled on {self.name}: {self.lora}.")
        quantized = [layer.name for layer in self._flatten_layers() if getattr(layer, "quantization_mode", None)]
        if quantized:
            raise ValueError(
                f"LoRA cannot go on the quantized {self.name} ({', '.join(quantized[:3])}, ...): "
                "enable LoRA on the float model, merge it, then quantize."
            )
        for layer in self.layers:
            if not isinstance(layer, TransformerBlock):
                layer.trainable = False
        for block in self.transformer_blocks:
            block.enable_lora(rank, alpha, targets)

    @property
    def lora(self):
        """`{"rank", "alpha", "targets"}` of the LoRA adapters, or None without them."""
        block = self.transformer_blocks[0]
        if block.lora_rank is None:
            return None
        return {"rank": block.lora_rank, "alpha": block.lora_alpha, "targets": list(block.lora_targets)}

    def quantize(self, mode=None, config=None, **kwargs):
        """Keras's `Model.quantize`, remembered: the setting goes into `get_config`, so a
        quantized model's `.keras` file reloads quantized. tfllm models take `"int8"`: every
        Dense and Embedding layer's weights to int8 with per-output-channel scales (layer
        norms and biases stay float). Keras's default config also quantizes each layer's
        inputs on the fly for int8 x int8 products; `tfllm.compression.quantize` chooses
        weight-only int8 (float inputs, the int8 kernel cast to float), which serves faster
        on CPUs. Raises on a second call and on a model with LoRA adapters.
        """
        if self.quantization is not None:
            raise ValueError(f"{self.name} is already quantized: {self.quantization}.")
        self._quantization = _quantize(self, mode, config, kwargs)

    @property
    def quantization(self):
        """`{"mode", "activations"}` of a quantized model, or None."""
        return getattr(self, "_quantization", None)

    def get_config(self):
        # Not Functional's config (a graph of layers): the keyword config `__init__` takes,
        # and the LoRA adapters' settings where the model has them.
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            **{key: getattr(self, key) for key in self.defaults},
        }
        if self.lora is not None:
            config["lora"] = self.lora
        if self.quantization is not None:
            config["quantization"] = self.quantization
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        lora = config.pop("lora", None)
        quantization = config.pop("quantization", None)
        model = cls(**config)
        if lora is not None:
            model.enable_lora(**lora)
        if quantization is not None:
            model.quantize(quantization["mode"], config=int8_config(quantization["activations"]))
        return model


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

    def enable_lora(self, rank, alpha=None, targets=("query", "value")):
        """`Backbone.enable_lora` on the backbone: its adapters train, the rest of it is frozen,
        and the task's head stays trainable."""
        self.backbone.enable_lora(rank, alpha, targets)

    def quantize(self, mode=None, config=None, **kwargs):
        """`Backbone.quantize` for the whole task model: the backbone and the head."""
        if self.quantization is not None:
            raise ValueError(f"{self.name} is already quantized: {self.quantization}.")
        self._quantization = _quantize(self, mode, config, kwargs)
        self.backbone._quantization = self._quantization

    @property
    def quantization(self):
        """`{"mode", "activations"}` of a quantized model, or None."""
        return getattr(self, "_quantization", None)

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            **self._head_config,
        }
        if self.quantization is not None:
            config["quantization"] = self.quantization
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        quantization = config.pop("quantization", None)
        if isinstance(config.get("backbone"), dict):
            # A quantized task's backbone config says so: it comes back quantized, and the
            # head is quantized below.
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        model = cls(**config)
        if quantization is not None:
            model.quantize(quantization["mode"], config=int8_config(quantization["activations"]))
        return model
