"""BERT task models: pretraining (masked LM + next sentence) and classification."""

import keras

from tfllm.layers import HashDropout, MaskedLMHead
from tfllm.layers._validation import check_positive_int, check_rate
from tfllm.training.losses import SparseCrossEntropy

_BACKBONE_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def _backbone_inputs():
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in _BACKBONE_INPUTS}


def BERTPretrainer(backbone, name="bert_pretrainer"):
    """BERT's pretraining model: a tied masked-LM head and a next-sentence head.

    Args:
        backbone: a model from `tfllm.models.BERT`.
        name: the model's name.

    Returns:
        A Functional `keras.Model` with inputs `{"token_ids", "segment_ids",
        "padding_mask", "mask_positions"}` and float32 logits `{"mlm": (batch,
        num_masked, vocabulary_size), "nsp": (batch, 2)}` (`nsp` class 1: the second
        segment follows the first). Train it on `tfllm.data.bert_pretraining_dataset`
        with `masked_lm_loss()` for `mlm` (its sample weights drop the padding of
        `mask_positions`).
    """
    token_embedding = backbone.get_layer("token_embedding")
    # The heads extend the backbone's own graph rather than nesting it as one layer:
    # the tied MLM head and the encoder then share `token_embedding` at one level, which
    # is what lets the tie survive `.keras` saving. `backbone` keeps working on its own
    # (and shares every weight), so it can be saved after pretraining.
    inputs = dict(backbone.input)
    inputs["mask_positions"] = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
    outputs = backbone.output
    mlm = MaskedLMHead(
        token_embedding=token_embedding,
        intermediate_activation="gelu",
        layer_norm_epsilon=backbone.get_layer("embeddings_layer_norm").epsilon,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        dtype=backbone.dtype_policy,
        name="mlm_head",
    )(outputs["sequence_output"], mask_positions=inputs["mask_positions"])
    nsp = keras.layers.Dense(
        2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), dtype=backbone.dtype_policy, name="nsp_head"
    )(outputs["pooled_output"])
    outputs = {
        "mlm": keras.layers.Activation("linear", dtype="float32", name="mlm")(mlm),
        "nsp": keras.layers.Activation("linear", dtype="float32", name="nsp")(nsp),
    }
    return keras.Model(inputs, outputs, name=name)


def BERTClassifier(backbone, num_classes, dropout=0.1, name="bert_classifier"):
    """A sequence classifier: BERT's pooled output -> dropout -> dense logits.

    Args:
        backbone: a model from `tfllm.models.BERT` (fresh or pretrained).
        num_classes: int.
        dropout: the dropout rate before the output layer.
        name: the model's name.

    Returns:
        A Functional `keras.Model`: `{"token_ids", "segment_ids", "padding_mask"}` ->
        float32 logits `(batch, num_classes)`.
    """
    check_positive_int("num_classes", num_classes)
    check_rate("dropout", dropout)
    inputs = _backbone_inputs()
    pooled = backbone(inputs)["pooled_output"]
    x = HashDropout(dropout, name="classifier_dropout")(pooled)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        dtype=backbone.dtype_policy,
        name="classifier_logits",
    )(x)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(inputs, logits, name=name)


def masked_lm_loss():
    """Cross-entropy on the vocabulary's logits averaged over the weighted (real) predictions only."""
    return SparseCrossEntropy(reduction="mean_with_sample_weight")
