"""BERT task models: pretraining (masked LM + next sentence), classification, token
classification (named entities) and extractive question answering.

Each wraps its backbone the same way (`tfllm.models.backbone.Task`): the BERT is called as one
nested layer on the task's inputs, kept as `model.backbone`, and saved inside the task's config.
"""

import keras

from tfllm._validation import check_positive_int, check_rate
from tfllm.layers import HashDropout, MaskedLMHead
from tfllm.models.backbone import Task
from tfllm.models.bert import BERT
from tfllm.training.losses import SparseCrossEntropy


def _check_backbone(backbone, task):
    if not isinstance(backbone, BERT):
        raise ValueError(
            f"{task} needs a `tfllm.models.BERT` backbone. Received: {type(backbone).__name__} "
            f"{getattr(backbone, 'name', backbone)!r}"
        )


def _backbone_inputs():
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in BERT.input_names}


@keras.saving.register_keras_serializable(package="tfllm")
class BERTPretrainer(Task):
    """BERT's pretraining model: a tied masked-LM head and a next-sentence head.

    Args:
        backbone: a `tfllm.models.BERT`. It shares every weight with the pretrainer, so it
            can be saved on its own after pretraining.
        name: the model's name.

    Inputs: `{"token_ids", "segment_ids", "padding_mask", "mask_positions"}`. Outputs: float32
    logits `{"mlm": (batch, num_masked, vocabulary_size), "nsp": (batch, 2)}` (`nsp` class 1:
    the second segment follows the first). Train it on `tfllm.data.bert_pretraining_dataset`
    with `masked_lm_loss()` for `mlm` (its sample weights drop the padding of
    `mask_positions`).

    Layers, as attributes: `backbone`, `masked_lm_head` (its output projection is the
    backbone's `token_embedding`), `nsp_head`.

    Example:

    >>> pretrainer = BERTPretrainer(tfllm.models.BERT.from_preset("bert-test"))
    >>> pretrainer.backbone.num_layers
    2
    """

    def __init__(self, backbone, name="bert_pretrainer", **kwargs):
        _check_backbone(backbone, "BERTPretrainer")
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        masked_lm_head = MaskedLMHead(
            token_embedding=backbone.token_embedding,
            intermediate_activation="gelu",
            layer_norm_epsilon=backbone.layer_norm_epsilon,
            kernel_initializer=initializer,
            dtype=backbone.dtype_policy,
            name="mlm_head",
        )
        nsp_head = keras.layers.Dense(2, kernel_initializer=initializer, dtype=backbone.dtype_policy, name="nsp_head")

        inputs = _backbone_inputs()
        inputs["mask_positions"] = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
        outputs = backbone({name: inputs[name] for name in BERT.input_names})
        mlm = masked_lm_head(outputs["sequence_output"], mask_positions=inputs["mask_positions"])
        nsp = nsp_head(outputs["pooled_output"])
        outputs = {
            "mlm": keras.layers.Activation("linear", dtype="float32", name="mlm")(mlm),
            "nsp": keras.layers.Activation("linear", dtype="float32", name="nsp")(nsp),
        }
        super().__init__(inputs, outputs, backbone=backbone, config={}, name=name, **kwargs)
        self.masked_lm_head = masked_lm_head
        self.nsp_head = nsp_head


@keras.saving.register_keras_serializable(package="tfllm")
class BERTClassifier(Task):
    """A sequence classifier: a pooled summary of the text -> dropout -> dense logits.

    Args:
        backbone: a `tfllm.models.BERT` (fresh, pretrained or imported).
        num_classes: int.
        dropout: the dropout rate before the output layer.
        pooling: how the text is summed up: `"cls"`, the backbone's `pooled_output` (the
            `[CLS]` state through its pooler, as BERT was pretrained), or `"mean"`, the
            average of the final hidden states over the non-padding tokens. A BERT trained
            from scratch on a few thousand examples learns faster from the mean, which needs
            no attention pattern that gathers the text into `[CLS]`.
        name: the model's name.

    Inputs: `{"token_ids", "segment_ids", "padding_mask"}`. Output: float32 logits
    `(batch, num_classes)`.

    Layers, as attributes: `backbone`, `output_dense`.

    Example:

    >>> classifier = BERTClassifier(tfllm.models.BERT.from_preset("bert-test"), num_classes=3)
    >>> ids = np.ones((2, 8), "int32")
    >>> classifier({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": ids}).shape
    (2, 3)
    """

    def __init__(self, backbone, num_classes, dropout=0.1, pooling="cls", name="bert_classifier", **kwargs):
        _check_backbone(backbone, "BERTClassifier")
        num_classes = check_positive_int("num_classes", num_classes)
        dropout = check_rate("dropout", dropout)
        if pooling not in ("cls", "mean"):
            raise ValueError(f'`pooling` must be "cls" or "mean". Received: pooling={pooling!r}')
        classifier_dropout = HashDropout(dropout, name="classifier_dropout")
        output_dense = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=backbone.dtype_policy,
            name="classifier_logits",
        )

        inputs = _backbone_inputs()
        outputs = backbone(inputs)
        if pooling == "cls":
            pooled = outputs["pooled_output"]
        else:
            mask = keras.ops.cast(inputs["padding_mask"], "bool")
            pooled = keras.layers.GlobalAveragePooling1D(dtype=backbone.dtype_policy, name="mean_pooling")(
                outputs["sequence_output"], mask=mask
            )
        logits = output_dense(classifier_dropout(pooled))
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        config = dict(num_classes=num_classes, dropout=dropout, pooling=pooling)
        super().__init__(inputs, logits, backbone=backbone, config=config, name=name, **kwargs)
        self.output_dense = output_dense


@keras.saving.register_keras_serializable(package="tfllm")
class BERTTokenClassifier(Task):
    """A token classifier (named-entity recognition): each token's final hidden state ->
    dropout -> dense logits.

    Args:
        backbone: a `tfllm.models.BERT` (fresh, pretrained or imported).
        num_classes: int, the number of tags (`O`, `B-PER`, `I-PER`, ...).
        dropout: the dropout rate before the output layer.
        name: the model's name.

    Inputs: `{"token_ids", "segment_ids", "padding_mask"}`. Output: float32 logits
    `(batch, sequence_length, num_classes)`. Train it on `tfllm.data.token_classification_dataset`
    (labels on each word's first piece, the other positions weighted 0);
    `tfllm.inference.EntityRecognizer` turns its outputs into entities.

    Layers, as attributes: `backbone`, `output_dense`.

    Example:

    >>> tagger = BERTTokenClassifier(tfllm.models.BERT.from_preset("bert-test"), num_classes=5)
    >>> ids = np.ones((2, 8), "int32")
    >>> tagger({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": ids}).shape
    (2, 8, 5)
    """

    def __init__(self, backbone, num_classes, dropout=0.1, name="bert_token_classifier", **kwargs):
        _check_backbone(backbone, "BERTTokenClassifier")
        num_classes = check_positive_int("num_classes", num_classes)
        dropout = check_rate("dropout", dropout)
        token_dropout = HashDropout(dropout, name="token_dropout")
        output_dense = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=backbone.dtype_policy,
            name="token_logits",
        )

        inputs = _backbone_inputs()
        sequence = backbone(inputs)["sequence_output"]
        logits = output_dense(token_dropout(sequence))
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        config = dict(num_classes=num_classes, dropout=dropout)
        super().__init__(inputs, logits, backbone=backbone, config=config, name=name, **kwargs)
        self.output_dense = output_dense


@keras.saving.register_keras_serializable(package="tfllm")
class BERTQuestionAnswerer(Task):
    """Extractive question answering: a start and an end logit for each token.

    Args:
        backbone: a `tfllm.models.BERT` (fresh, pretrained or imported).
        name: the model's name.

    Inputs: `{"token_ids", "segment_ids", "padding_mask"}` holding `[CLS] question [SEP]
    context [SEP]`. Outputs: float32 `{"start_logits", "end_logits"}`, each
    `(batch, sequence_length)`; padding positions get a large negative logit. Train it with
    the answer's first and last token positions as the labels of `start_logits` and
    `end_logits` (sparse cross-entropy on each); a window without the answer points both at
    `[CLS]`, position 0.

    Layers, as attributes: `backbone`, `span_dense` (2 outputs: start, end).

    Example:

    >>> reader = BERTQuestionAnswerer(tfllm.models.BERT.from_preset("bert-test"))
    >>> ids = np.ones((2, 8), "int32")
    >>> reader({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": ids})["start_logits"].shape
    (2, 8)
    """

    def __init__(self, backbone, name="bert_question_answerer", **kwargs):
        _check_backbone(backbone, "BERTQuestionAnswerer")
        span_dense = keras.layers.Dense(
            2,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=backbone.dtype_policy,
            name="span_logits",
        )

        inputs = _backbone_inputs()
        sequence = backbone(inputs)["sequence_output"]
        logits = keras.layers.Activation("linear", dtype="float32", name="span")(span_dense(sequence))
        padding = keras.ops.cast(keras.ops.equal(inputs["padding_mask"], 0), "float32") * -1e9
        outputs = {
            "start_logits": keras.layers.Identity(dtype="float32", name="start_logits")(logits[..., 0] + padding),
            "end_logits": keras.layers.Identity(dtype="float32", name="end_logits")(logits[..., 1] + padding),
        }
        super().__init__(inputs, outputs, backbone=backbone, config={}, name=name, **kwargs)
        self.span_dense = span_dense


def masked_lm_loss():
    """Cross-entropy on the vocabulary's logits averaged over the weighted (real) predictions only."""
    return SparseCrossEntropy(reduction="mean_with_sample_weight")
