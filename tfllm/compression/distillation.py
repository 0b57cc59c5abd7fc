"""Knowledge distillation: a smaller student learns from a trained teacher's outputs.

`Distiller(teacher, student)` is a Keras model that trains `student` with `fit`: the loss adds
the student's usual (compiled) loss on the labels and the soft-target loss of Hinton et al.
(2015), the KL divergence from the teacher's predictions to the student's, both softened by a
temperature, and optionally the mean squared distance between the student's transformer-block
outputs and those of matched teacher blocks (hidden-state matching, as in TinyBERT).
`truncated(model, layers)` makes a student that starts from chosen transformer blocks of the
teacher (as DistilBERT does), with every other weight copied.

Keras has `keras.distillation.Distiller`, but its loss ignores sample weights and padding: a
token or language-model student would learn the teacher's guesses at padded positions and at
the word pieces whose labels are masked out. Here the soft targets are weighted exactly as the
labels are.
"""

import re

import keras
from keras import ops

from tfllm._validation import check_positive_float, check_positive_int, check_rate
from tfllm.layers import TransformerBlock
from tfllm.models import graph
from tfllm.models.backbone import Backbone, Task


@keras.saving.register_keras_serializable(package="tfllm")
class Distiller(keras.Model):
    """Trains `student` on the labels and on `teacher`'s softened predictions.

    The loss of a batch is

        alpha * hard + (1 - alpha) * temperature**2 * KL(softmax(t / T) || softmax(s / T))
              + hidden_weight * hidden

    where `hard` is the loss given to `compile` (on the labels, with their sample weights), `t`
    and `s` are the teacher's and the student's logits and `T` the temperature; the `T**2`
    keeps the soft targets' gradients on the scale of the hard ones (Hinton et al., 2015). The
    KL is taken over the last axis of each output (classes, tags, vocabulary, or the positions
    of a span's start and end) and averaged with the sample weights, or for outputs with a
    sequence axis and no sample weights over the real tokens of `padding_mask`; several outputs
    add up, as their compiled losses do.

    `hidden` (only with `hidden_weight > 0`) is the squared distance between the output of each
    student block and that of its teacher block (`hidden_layers`), averaged over the hidden
    units, over the real tokens of `padding_mask` (all tokens without one), and over the
    blocks. It needs the two models to be Functional with `TransformerBlock`s of one width.

    The teacher is frozen and runs in inference mode. Calling the distiller calls the student,
    so compiled metrics score the student; `fit` also logs `soft_loss`. After training, use
    `distiller.student`.

    Args:
        teacher: a trained tfllm model (`GPT`, or a BERT task model) or any Keras model.
        student: a model of the same kind with outputs of the same structure and last sizes
            (the same classes, tags or vocabulary), taking the same inputs.
        temperature: float > 0, default 2.0.
        alpha: float in [0, 1], default 0.5: the weight of the hard loss.
        hidden_weight: float >= 0, default 0.0: the weight of hidden-state matching (off at 0).
        hidden_layers: with `hidden_weight`, the teacher block each student block learns from
            (indices, one per student block, increasing); default: as many teacher blocks,
            evenly spaced from the first to the last, the blocks `truncated(teacher, k)` keeps.
        name: the model's name.

    Raises:
        ValueError: the teacher and the student have different vocabularies, output
            structures or output sizes, a bad temperature, alpha or hidden weight, or (for
            hidden-state matching) blocks of different widths or a bad `hidden_layers`.

    Example:

    >>> distiller = Distiller(teacher, truncated(teacher, [0, 5]), temperature=2.0)
    >>> distiller.compile(optimizer="adam",
    ...                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> distiller.fit(train)
    >>> student = distiller.student
    """

    def __init__(
        self, teacher, student, temperature=2.0, alpha=0.5, hidden_weight=0.0, hidden_layers=None,
        name="distiller", **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        check_compatible(teacher, student)
        self.teacher = teacher
        self.student = student
        self.temperature = check_positive_float("temperature", temperature)
        self.alpha = check_rate("alpha", alpha)
        hidden_weight = float(hidden_weight)
        if not hidden_weight >= 0.0:
            raise ValueError(f"`hidden_weight` must be >= 0. Received: hidden_weight={hidden_weight}")
        self.hidden_weight = hidden_weight
        self.hidden_layers = _matched_blocks(teacher, student, hidden_layers) if hidden_weight else None
        self.teacher.trainable = False
        self.soft_loss_tracker = keras.metrics.Mean(name="soft_loss")
        self.hidden_loss_tracker = keras.metrics.Mean(name="hidden_loss") if hidden_weight else None
        self._student_hidden = None
        # Nothing of its own to build: its weights are the two models'.
        self.built = teacher.built and student.built

    def call(self, inputs, training=None):
        if not self.hidden_weight:
            return self.student(inputs, training=training)
        # The block outputs are kept for `compute_loss`, which runs next in the same step.
        outputs, self._student_hidden = _outputs_and_blocks(self.student, inputs)
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        hard = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        padding_mask = x.get("padding_mask") if isinstance(x, dict) else None
        if self.hidden_weight:
            # Outside `call`, no outer layer call says `training`: the teacher's layers run in
            # inference mode, as `self.teacher(x, training=False)` runs them.
            teacher_logits, teacher_hidden = _outputs_and_blocks(self.teacher, x)
        else:
            teacher_logits = self.teacher(x, training=False)
        soft = self.soft_target_loss(teacher_logits, y_pred, sample_weight, padding_mask)
        self.soft_loss_tracker.update_state(soft)
        loss = self.alpha * hard + (1.0 - self.alpha) * soft
        if self.hidden_weight:
            if self._student_hidden is None:
                raise RuntimeError("Distiller.compute_loss needs the block outputs of the call that gave `y_pred`.")
            teacher_hidden = [teacher_hidden[i] for i in self.hidden_layers]
            hidden = self.hidden_state_loss(teacher_hidden, self._student_hidden, padding_mask)
            self._student_hidden = None
            self.hidden_loss_tracker.update_state(hidden)
            loss = loss + self.hidden_weight * hidden
        return loss

    def hidden_state_loss(self, teacher_hidden, student_hidden, padding_mask=None):
        """The squared distance between matched block outputs (lists of `(batch, seq, width)`),
        averaged over the units, the real tokens of `padding_mask` and the blocks."""
        total = 0.0
        for teacher, student in zip(teacher_hidden, student_hidden, strict=True):
            distance = ops.mean(ops.square(ops.cast(student, "float32") - ops.cast(teacher, "float32")), axis=-1)
            if padding_mask is None:
                total += ops.mean(distance)
            else:
                weight = ops.cast(padding_mask, "float32")
                total += ops.sum(distance * weight) / ops.maximum(ops.sum(weight), 1.0)
        return total / len(student_hidden)

    def soft_target_loss(self, teacher_logits, student_logits, sample_weight=None, padding_mask=None):
        """The temperature-scaled KL divergence from the teacher's predictions to the student's,
        summed over the outputs and averaged over the weighted positions of each."""
        temperature = self.temperature
        teacher_flat = keras.tree.flatten(teacher_logits)
        student_flat = keras.tree.flatten(student_logits)
        if sample_weight is None or not keras.tree.is_nested(sample_weight):
            weights = [sample_weight] * len(student_flat)
        else:
            weights = keras.tree.flatten(sample_weight)
        total = 0.0
        for teacher, student, weight in zip(teacher_flat, student_flat, weights):
            teacher = ops.cast(teacher, "float32") / temperature
            student = ops.cast(student, "float32") / temperature
            # KL(p || q) at each position: sum p * (log p - log q), from log-softmaxes.
            teacher_log_probs = ops.log_softmax(teacher, axis=-1)
            divergence = ops.sum(
                ops.exp(teacher_log_probs) * (teacher_log_probs - ops.log_softmax(student, axis=-1)), axis=-1
            )
            if weight is None and padding_mask is not None and len(divergence.shape) == 2:
                weight = padding_mask
            if weight is None:
                total += ops.mean(divergence)
            else:
                weight = ops.cast(ops.reshape(weight, ops.shape(divergence)), "float32")
                total += ops.sum(divergence * weight) / ops.maximum(ops.sum(weight), 1.0)
        return total * temperature**2

    def get_config(self):
        return {
            "name": self.name,
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "hidden_weight": self.hidden_weight,
            "hidden_layers": self.hidden_layers,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("teacher", "student"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def check_compatible(teacher, student):
    """Raises a `ValueError` naming the difference unless `student` can learn from `teacher`'s
    outputs: Keras models with the same input names, the same vocabulary (tfllm models), and
    outputs of the same structure and last sizes."""
    for role, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise ValueError(f"The {role} must be a Keras model. Received: {type(model).__name__}")
    vocabularies = [_backbone(model).vocabulary_size if _backbone(model) is not None else None for model in (teacher, student)]
    if None not in vocabularies and vocabularies[0] != vocabularies[1]:
        raise ValueError(
            f"The teacher and the student have different vocabularies ({vocabularies[0]} and {vocabularies[1]} "
            "tokens): a student must read the teacher's token ids, so it needs the teacher's tokenizer."
        )
    names = [sorted(keras.tree.flatten(_input_names(model))) for model in (teacher, student)]
    if names[0] != names[1]:
        raise ValueError(f"The teacher and the student take different inputs: {names[0]} and {names[1]}.")
    outputs = [model.outputs for model in (teacher, student)]
    try:
        keras.tree.assert_same_structure(outputs[0], outputs[1])
    except (ValueError, TypeError):
        raise ValueError(
            f"The teacher's and the student's outputs differ in structure: {type(teacher).__name__} and "
            f"{type(student).__name__}."
        ) from None
    for teacher_output, student_output in zip(keras.tree.flatten(outputs[0]), keras.tree.flatten(outputs[1])):
        if teacher_output.shape[-1] != student_output.shape[-1]:
            raise ValueError(
                f"The teacher's and the student's outputs differ in size: {teacher_output.shape} and "
                f"{student_output.shape} (the same classes, tags or vocabulary are needed)."
            )


def truncated(model, layers):
    """A copy of `model` with only the transformer blocks `layers` (indices, in order), every
    other weight (embeddings, the head, ...) copied: a student that starts from its teacher.

    Args:
        model: a tfllm `Backbone` (`GPT`, `BERT`) or `Task` (a BERT task model), float (not
            quantized) and without LoRA adapters.
        layers: an int `k` (k blocks evenly spaced from the first to the last, e.g. 2 of 6:
            blocks 0 and 5) or a list of block indices.

    Returns:
        A new model of the same class, `num_layers=len(layers)`.
    """
    backbone = _backbone(model)
    if backbone is None:
        raise ValueError(f"`truncated` takes a tfllm Backbone or Task. Received: {type(model).__name__}")
    if backbone.lora is not None:
        raise ValueError(f"{model.name} has LoRA adapters: merge them first (tfllm.compression.merge_lora).")
    if getattr(model, "quantization", None) is not None or backbone.quantization is not None:
        raise ValueError(f"{model.name} is quantized: a student starts from the float teacher.")
    layers = student_layers(backbone.num_layers, layers)

    config = model.get_config()
    backbone_config = dict(config["backbone"]["config"] if isinstance(model, Task) else config)
    backbone_config["num_layers"] = len(layers)
    if isinstance(model, Task):
        student = type(model).from_config({**config, "backbone": type(backbone).from_config(backbone_config)})
    else:
        student = type(model).from_config(backbone_config)

    values = {weight.path: weight for weight in model.weights}
    for weight in student.weights:
        path = re.sub(r"^transformer_block_(\d+)/", lambda match: f"transformer_block_{layers[int(match[1])]}/", weight.path)
        # A copy: on JAX an assigned array is shared, and a training step that updates the
        # student must not donate the teacher's buffers.
        weight.assign(ops.copy(values[path]))
    return student


def student_layers(num_layers, layers):
    """`layers` (an int or a list of indices) as a list of distinct block indices, in order."""
    if isinstance(layers, int) and not isinstance(layers, bool):
        count = check_positive_int("layers", layers)
        if count > num_layers:
            raise ValueError(f"A student cannot have more blocks ({count}) than its teacher ({num_layers}).")
        if count == 1:
            return [num_layers - 1]
        return sorted({round(i * (num_layers - 1) / (count - 1)) for i in range(count)})
    layers = list(layers)
    if not layers or any(not isinstance(i, int) or not 0 <= i < num_layers for i in layers) or sorted(set(layers)) != layers:
        raise ValueError(
            f"`layers` must be increasing, distinct block indices in [0, {num_layers}). Received: {layers}"
        )
    return layers


def _blocks(model, role):
    if not graph.is_functional(model):
        raise ValueError(f"Hidden-state matching runs the {role}'s graph: it must be a Functional Keras model.")
    blocks = []
    for operation, _ in graph.operations(model):
        if isinstance(operation, TransformerBlock) and operation not in blocks:
            blocks.append(operation)
    if not blocks:
        raise ValueError(f"Hidden-state matching needs TransformerBlocks; the {role} ({model.name}) has none.")
    return blocks


def _matched_blocks(teacher, student, hidden_layers):
    """The teacher block (an index into its distinct blocks, in the order they run) that each
    student block learns from."""
    teacher_blocks, student_blocks = _blocks(teacher, "teacher"), _blocks(student, "student")
    if hidden_layers is None:
        hidden_layers = student_layers(len(teacher_blocks), len(student_blocks))
    else:
        hidden_layers = student_layers(len(teacher_blocks), list(hidden_layers))
        if len(hidden_layers) != len(student_blocks):
            raise ValueError(
                f"`hidden_layers` needs one teacher block for each of the student's {len(student_blocks)} blocks. "
                f"Received: {hidden_layers}"
            )
    widths = {block.output.shape[-1] for block in teacher_blocks + student_blocks}
    if len(widths) != 1:
        raise ValueError(
            f"Hidden-state matching compares block outputs, so the teacher's and the student's blocks must have "
            f"one width. Received widths {sorted(widths)}."
        )
    return hidden_layers


def _outputs_and_blocks(model, inputs):
    """`model`'s outputs on `inputs` and the output of each of its `TransformerBlock`s, in the
    order they run: the first call of each (BERT calls its last block a second time, on the
    first token only, for the pooled output). The layers take `training` from the layer call
    this runs in, as a model's layers do."""
    blocks = {}

    def hook(operation, *args, **kwargs):
        output = operation(*args, **kwargs)
        if isinstance(operation, TransformerBlock):
            blocks.setdefault(id(operation), output)
        return output

    return graph.run(model, inputs, hook), list(blocks.values())


def _backbone(model):
    if isinstance(model, Task):
        return model.backbone
    if isinstance(model, Backbone):
        return model
    return None


def _input_names(model):
    inputs = model.inputs or []
    return [getattr(tensor, "name", None) for tensor in keras.tree.flatten(inputs)]
