"""GPT: the GPT-2 architecture as a Functional Keras model."""

import keras

from tfllm.layers import HashDropout, PositionalEmbedding, ReversibleEmbedding, TransformerBlock
from tfllm.models._config import resolve_config
from tfllm.models.presets import GPT_PRESETS

GPT_DEFAULTS = dict(
    vocabulary_size=None,
    num_layers=None,
    num_heads=None,
    hidden_dim=None,
    intermediate_dim=None,
    max_sequence_length=1024,
    dropout=0.1,
    layer_norm_epsilon=1e-5,
    fused_attention=False,
)


def GPT(preset=None, *, dtype=None, name="gpt", **config):
    """Builds a GPT-2 language model: token ids in, next-token logits out.

    Exactly GPT-2's architecture, so that its checkpoints import: learned
    positions added to the token embeddings, pre-norm causal transformer blocks
    with the tanh-approximate GELU, a final layer norm, and logits through the
    transposed token embedding (tied weights).

    Args:
        preset: optional name from `tfllm.models.PRESETS` (`"gpt2-small"`, ...).
        dtype: optional dtype policy, e.g. `"mixed_bfloat16"`.
        name: the model's name.
        **config: `vocabulary_size, num_layers, num_heads, hidden_dim,
            intermediate_dim, max_sequence_length, dropout, layer_norm_epsilon,
            fused_attention` (see `TransformerBlock`); they override the preset's values.

    Returns:
        A Functional `keras.Model` with inputs `{"token_ids", "padding_mask"}`
        (int32 `(batch, seq)`, any `seq <= max_sequence_length`) and float32
        logits `(batch, seq, vocabulary_size)`. Its layers are named
        `token_embedding`, `position_embedding`, `transformer_block_{i}` and
        `final_layer_norm`, which is how `tfllm.generation` finds them.

    Example:

    >>> model = GPT("gpt-test")
    >>> logits = model({"token_ids": np.ones((2, 8), "int32"),
    ...                 "padding_mask": np.ones((2, 8), "int32")})
    >>> logits.shape
    (2, 8, 512)
    """
    config = resolve_config("GPT", GPT_PRESETS, GPT_DEFAULTS, preset, config)
    initializer = keras.initializers.RandomNormal(stddev=0.02)

    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")

    token_embedding = ReversibleEmbedding(
        config["vocabulary_size"],
        config["hidden_dim"],
        embeddings_initializer=initializer,
        dtype=dtype,
        name="token_embedding",
    )
    x = token_embedding(token_ids)
    positions = PositionalEmbedding(
        config["max_sequence_length"], initializer=initializer, dtype=dtype, name="position_embedding"
    )(x)
    x = keras.layers.Add(dtype=dtype, name="embeddings_add")([x, positions])
    x = HashDropout(config["dropout"], dtype=dtype, name="embeddings_dropout")(x)
    for i in range(config["num_layers"]):
        x = TransformerBlock(
            num_heads=config["num_heads"],
            intermediate_dim=config["intermediate_dim"],
            dropout=config["dropout"],
            fused_attention=config["fused_attention"],
            activation="gelu_approximate",
            layer_norm_epsilon=config["layer_norm_epsilon"],
            normalize_first=True,
            causal=True,
            kernel_initializer=initializer,
            dtype=dtype,
            name=f"transformer_block_{i}",
        )(x, padding_mask=padding_mask)
    x = keras.layers.LayerNormalization(
        epsilon=config["layer_norm_epsilon"], dtype=dtype, name="final_layer_norm"
    )(x)
    logits = token_embedding(x, reverse=True)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, logits, name=name)
