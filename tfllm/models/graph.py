"""Running a Functional model's own graph with a hook on its layer calls.

Generation and inspection need more from a model than its outputs: each block's KV cache,
each block's attention, the embeddings as a tensor to differentiate. Rather than look layers up
by name and re-implement the model, they run the model's graph as Keras does
(`Functional._run_through_graph`) and let a hook decide how each layer is called; nested
Functional models (a backbone inside a task model) are entered with the same hook.
"""

import keras


def is_functional(operation):
    return isinstance(operation, keras.Model) and hasattr(operation, "_nodes_by_depth")


def operations(model):
    """`(operation, call kwargs)` for every layer call in `model`'s graph, nested Functional
    models entered, in the order Keras runs them."""
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if is_functional(node.operation):
                yield from operations(node.operation)
            else:
                yield node.operation, node.arguments.kwargs


def run(model, inputs, hook):
    """Runs `model` on `inputs` (as `model(inputs)` takes them) calling `hook(operation, *args,
    **kwargs)` in place of each layer call; the hook returns the layer's output (typically
    `operation(*args, **kwargs)`, changed where it wants)."""

    def call(operation, *args, **kwargs):
        if is_functional(operation):
            return operation._run_through_graph(
                operation._standardize_inputs(args[0]), operation_fn=lambda op: op, call_fn=call
            )
        return hook(operation, *args, **kwargs)

    return model._run_through_graph(model._standardize_inputs(inputs), operation_fn=lambda op: op, call_fn=call)
