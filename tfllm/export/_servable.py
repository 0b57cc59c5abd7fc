"""The model an export holds: its weights, without what training attached to it."""

import keras


def servable_model(model):
    """`model`, or an uncompiled copy of it with the same weights when it is compiled.

    A compiled Keras model tracks its optimizer, so a SavedModel of it would store the
    optimizer's state too (Adam's two moments: the weights three times over). The copy is
    built from the model's config (tfllm models, with their LoRA and quantization settings)
    or by `keras.models.clone_model`, and leaves `model` as it is.
    """
    if getattr(model, "optimizer", None) is None:
        return model
    from tfllm.models.backbone import Backbone, Task

    if isinstance(model, (Backbone, Task)):
        copy = type(model).from_config(model.get_config())
    else:
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
