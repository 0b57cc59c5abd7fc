"""GPT: the GPT-2 architecture as a configured Functional Keras model."""

import keras

from tfllm.models.backbone import Backbone
from tfllm.models.presets import GPT_PRESETS


@keras.saving.register_keras_serializable(package="tfllm")
class GPT(Backbone):
    """A GPT-2 language model: token ids in, next-token logits out.

    Exactly GPT-2's architecture, so that its checkpoints import: learned
    positions added to the token embeddings, pre-norm causal transformer blocks
    with the tanh-approximate GELU, a final layer norm, and logits through the
    transposed token embedding (tied weights), in float32 under any precision.

    The config is kept as attributes (`model.num_layers`, ...) and in
    `get_config()`; `GPT.from_config(model.get_config())` builds the same model.

    Args:
        preset: optional name from `tfllm.models.PRESETS` (`"gpt2-small"`, ...).
        vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim: ints;
            `num_heads` and `intermediate_dim` may be lists of one per layer (see `Backbone`).
        head_dim: int, default None (`hidden_dim // num_heads`): the width of every
            attention head; needed with a list of `num_heads`.
        max_sequence_length: int, default 1024: the number of learned positions.
        dropout: float, default 0.1: on the embeddings, the residual branches and the
            attention probabilities.
        layer_norm_epsilon: float, default 1e-5.
        fused_attention: bool, default False: attention through
            `keras.ops.dot_product_attention` (see `TransformerBlock`).
        dtype: optional dtype policy, e.g. `"mixed_bfloat16"`.
        name: the model's name.

        The keyword arguments override the preset's values.

    Inputs: int32 `{"token_ids", "padding_mask"}` of shape `(batch, seq)`, any `seq <=
    max_sequence_length`. Output: float32 logits `(batch, seq, vocabulary_size)`.

    Layers, as attributes: `token_embedding` (a `keras.layers.ReversibleEmbedding`, also the
    output projection), `position_embedding`, `transformer_blocks` (a list),
    `final_layer_norm`.

    Example:

    >>> model = GPT.from_preset("gpt-test")
    >>> logits = model({"token_ids": np.ones((2, 8), "int32"),
    ...                 "padding_mask": np.ones((2, 8), "int32")})
    >>> logits.shape, model.num_layers
    ((2, 8, 512), 2)
    """

    presets = GPT_PRESETS
    input_names = ("token_ids", "padding_mask")
    defaults = dict(
        vocabulary_size=None,
        num_layers=None,
        num_heads=None,
        hidden_dim=None,
        intermediate_dim=None,
        head_dim=None,
        max_sequence_length=1024,
        dropout=0.1,
        layer_norm_epsilon=1e-5,
        fused_attention=False,
    )

    def __init__(self, preset=None, *, dtype=None, name="gpt", **kwargs):
        base_kwargs = {key: kwargs.pop(key) for key in ("trainable",) if key in kwargs}
        config = self.resolve_config(preset, kwargs)
        initializer = keras.initializers.RandomNormal(stddev=0.02)

        # === Layers ===
        token_embedding, position_embedding, embeddings_dropout = self.embedding_layers(config, initializer, dtype)
        transformer_blocks = self.transformer_blocks_for(
            config, initializer, dtype, activation="gelu_approximate", normalize_first=True, causal=True
        )
        final_layer_norm = keras.layers.LayerNormalization(
            epsilon=config["layer_norm_epsilon"], dtype=dtype, name="final_layer_norm"
        )

        # === Functional graph ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = token_embedding(token_ids)
        x = keras.layers.Add(dtype=dtype, name="embeddings_add")([x, position_embedding(x)])
        x = embeddings_dropout(x)
        for block in transformer_blocks:
            x = block(x, padding_mask=padding_mask)
        logits = token_embedding(final_layer_norm(x), reverse=True)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        super().__init__(
            {"token_ids": token_ids, "padding_mask": padding_mask},
            logits,
            config=config,
            dtype=dtype,
            name=name,
            **base_kwargs,
        )

        # === Layers as attributes ===
        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        self.embeddings_dropout = embeddings_dropout
        self.transformer_blocks = transformer_blocks
        self.final_layer_norm = final_layer_norm
