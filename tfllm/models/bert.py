"""BERT: the original BERT encoder as a configured Functional Keras model."""

import keras

from tfllm.models.backbone import Backbone
from tfllm.models.presets import BERT_PRESETS


@keras.saving.register_keras_serializable(package="tfllm")
class BERT(Backbone):
    """A BERT encoder: token, segment and padding inputs; sequence and pooled outputs.

    Exactly the original architecture, so that its checkpoints import: the sum
    of token, learned position and segment (token type) embeddings, a layer norm
    and dropout, post-norm bidirectional transformer blocks with the exact
    GELU, and a tanh pooler over the first (`[CLS]`) token. The pooler reads a
    second call of the last block that computes the `[CLS]` position only
    (`TransformerBlock(output_length=1)`): the same value, and a model that uses
    only `pooled_output` (`BERTClassifier`) skips three quarters of the last
    block's work once compiled.

    The config is kept as attributes (`model.num_layers`, ...) and in
    `get_config()`; `BERT.from_config(model.get_config())` builds the same model.

    Args:
        preset: optional name from `tfllm.models.PRESETS` (`"bert-base"`, ...).
        vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim: ints;
            `num_heads` and `intermediate_dim` may be lists of one per layer (see `Backbone`).
        head_dim: int, default None (`hidden_dim // num_heads`): the width of every
            attention head; needed with a list of `num_heads`.
        max_sequence_length: int, default 512: the number of learned positions.
        num_segments: int, default 2: the segment (token type) vocabulary.
        dropout: float, default 0.1.
        layer_norm_epsilon: float, default 1e-12.
        fused_attention: bool, default False (see `TransformerBlock`).
        dtype: optional dtype policy, e.g. `"mixed_bfloat16"`.
        name: the model's name.

        The keyword arguments override the preset's values.

    Inputs: int32 `{"token_ids", "segment_ids", "padding_mask"}` of shape `(batch, seq)`.
    Outputs: `{"sequence_output": (batch, seq, hidden_dim), "pooled_output": (batch,
    hidden_dim)}`.

    Layers, as attributes: `token_embedding` (a `keras.layers.ReversibleEmbedding`, for
    tying an MLM head to it), `position_embedding`, `segment_embedding`,
    `embeddings_layer_norm`, `transformer_blocks` (a list), `pooler_dense`.

    Example:

    >>> model = BERT.from_preset("bert-test")
    >>> ids = np.ones((2, 8), "int32")
    >>> outputs = model({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": ids})
    >>> outputs["pooled_output"].shape
    (2, 32)
    """

    presets = BERT_PRESETS
    input_names = ("token_ids", "segment_ids", "padding_mask")
    defaults = dict(
        vocabulary_size=None,
        num_layers=None,
        num_heads=None,
        hidden_dim=None,
        intermediate_dim=None,
        head_dim=None,
        max_sequence_length=512,
        num_segments=2,
        dropout=0.1,
        layer_norm_epsilon=1e-12,
        fused_attention=False,
    )

    def __init__(self, preset=None, *, dtype=None, name="bert", **kwargs):
        base_kwargs = {key: kwargs.pop(key) for key in ("trainable",) if key in kwargs}
        config = self.resolve_config(preset, kwargs)
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        hidden_dim = config["hidden_dim"]

        # === Layers ===
        token_embedding, position_embedding, embeddings_dropout = self.embedding_layers(config, initializer, dtype)
        segment_embedding = keras.layers.Embedding(
            config["num_segments"], hidden_dim, embeddings_initializer=initializer, dtype=dtype, name="segment_embedding"
        )
        embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=config["layer_norm_epsilon"], dtype=dtype, name="embeddings_layer_norm"
        )
        transformer_blocks = self.transformer_blocks_for(
            config, initializer, dtype, activation="gelu", normalize_first=False, causal=False
        )
        pooler_dense = keras.layers.Dense(
            hidden_dim, activation="tanh", kernel_initializer=initializer, dtype=dtype, name="pooler_dense"
        )

        # === Functional graph ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = token_embedding(token_ids)
        x = keras.layers.Add(dtype=dtype, name="embeddings_add")(
            [tokens, position_embedding(tokens), segment_embedding(segment_ids)]
        )
        x = embeddings_dropout(embeddings_layer_norm(x))
        for block in transformer_blocks[:-1]:
            x = block(x, padding_mask=padding_mask)
        last = transformer_blocks[-1]
        # The pooler's input: the last block at the `[CLS]` position only. Where the full
        # call goes unused (a classifier), compiled graphs prune it.
        cls = last(x, padding_mask=padding_mask, output_length=1)
        x = last(x, padding_mask=padding_mask)
        pooled = pooler_dense(cls[:, 0, :])
        super().__init__(
            {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
            {"sequence_output": x, "pooled_output": pooled},
            config=config,
            dtype=dtype,
            name=name,
            **base_kwargs,
        )

        # === Layers as attributes ===
        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        self.segment_embedding = segment_embedding
        self.embeddings_layer_norm = embeddings_layer_norm
        self.embeddings_dropout = embeddings_dropout
        self.transformer_blocks = transformer_blocks
        self.pooler_dense = pooler_dense
