"""Training speed: tfllm against keras-hub on the same model, data, precision and optimizer.

Each case builds the tfllm model and the keras-hub model of the same architecture, copies the
tfllm weights into the keras-hub one (so that both start from the same point and, without
dropout, should follow the same loss curve), compiles both with the same optimizer (`AdamW`)
and each library's cross-entropy on logits (keras-hub's default, Keras's
`SparseCategoricalCrossentropy(from_logits=True)`, and tfllm's `SparseCrossEntropy`: the same
values, with the gradient in one pass), and then trains
them alternately in one process on the same batches: a warm-up (which compiles), then
`repeats` rounds in which each library runs `steps` training steps, the order rotating each
round. It reports the median seconds per step, tokens per second, the speed-up (the median of
the per-round ratios, so load that comes and goes on a shared machine cancels out), the
model FLOPs utilisation the way nanoGPT estimates it, and the loss each library reached.

Two families of case:

- causal LM (`family="gpt"`): `tfllm.models.GPT` against `keras_hub.models.GPT2CausalLM`
  (no preprocessor; logits through the tied token embedding), next-token targets;
- classifier (`family="bert"`): `tfllm.models.BERTClassifier` on `tfllm.models.BERT` against
  `keras_hub.models.BertTextClassifier` on `BertBackbone` (no preprocessor), 2 classes.

The data are synthetic but learnable, so the loss curve means something: token sequences from a
fixed random Markov chain (each token is followed by its successor in a fixed permutation with
probability 0.9, otherwise by a uniform token), and for the classifier a label that is the
parity of the first token, with padding at random lengths.
"""

import statistics
import time

import keras
import numpy as np

LIBRARIES = ("tfllm", "keras-hub")

SMALL_GPT = dict(
    vocabulary_size=8192, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024, max_sequence_length=256
)
GPT2_SMALL = dict(
    vocabulary_size=50257, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072, max_sequence_length=1024
)
BERT_BASE = dict(
    vocabulary_size=30522,
    num_layers=12,
    num_heads=12,
    hidden_dim=768,
    intermediate_dim=3072,
    max_sequence_length=512,
    num_segments=2,
)
# `--quick` sizes: the same code paths in seconds.
TINY_GPT = dict(
    vocabulary_size=512, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, max_sequence_length=64
)
TINY_BERT = dict(TINY_GPT, num_segments=2)

LEARNING_RATE = 3e-4
WEIGHT_DECAY = 0.01


def case(
    name, family, config, batch_size, sequence_length, precision="float32", dropout=0.0, xla=True, tfllm_options=None
):
    """Describes one benchmark case (a plain dict, stored as is in the JSON results).

    Args:
        name: str, the case's group name in the table (`"small"`, `"gpt2-small"`, ...).
        family: `"gpt"` (causal LM) or `"bert"` (sequence classifier).
        config: the architecture, in tfllm's keyword names (without `dropout`).
        batch_size: int.
        sequence_length: int.
        precision: `"float32"` or `"mixed_bfloat16"` (a Keras dtype policy name).
        dropout: float, the model's dropout rate.
        xla: bool, `jit_compile` for the training step.
        tfllm_options: optional dict of further `tfllm.models.GPT`/`BERT` arguments for
            tfllm's model alone (e.g. `{"fused_attention": True}`).

    Returns:
        A dict with those keys.
    """
    if family not in ("gpt", "bert"):
        raise ValueError(f"`family` must be 'gpt' or 'bert'. Received: family={family!r}")
    if precision not in ("float32", "mixed_bfloat16"):
        raise ValueError(f"`precision` must be 'float32' or 'mixed_bfloat16'. Received: precision={precision!r}")
    if sequence_length > config["max_sequence_length"]:
        raise ValueError(
            f"`sequence_length` ({sequence_length}) exceeds the config's max_sequence_length "
            f"({config['max_sequence_length']})."
        )
    return dict(
        name=name,
        family=family,
        config=dict(config),
        batch_size=batch_size,
        sequence_length=sequence_length,
        precision=precision,
        dropout=dropout,
        xla=bool(xla),
        tfllm_options=dict(tfllm_options or {}),
    )


# --- Data ---------------------------------------------------------------------------------


def make_batches(spec, num_batches=4, seed=0):
    """The case's training batches `(inputs, targets)` as NumPy arrays, the same for both libraries."""
    rng = np.random.default_rng(seed)
    batch, length, vocab = spec["batch_size"], spec["sequence_length"], spec["config"]["vocabulary_size"]
    successor = rng.permutation(vocab)
    batches = []
    for _ in range(num_batches):
        tokens = np.empty((batch, length + 1), "int32")
        tokens[:, 0] = rng.integers(0, vocab, batch)
        for t in range(1, length + 1):
            follow = rng.random(batch) < 0.9
            tokens[:, t] = np.where(follow, successor[tokens[:, t - 1]], rng.integers(0, vocab, batch))
        if spec["family"] == "gpt":
            inputs = {"token_ids": tokens[:, :-1], "padding_mask": np.ones((batch, length), "int32")}
            targets = tokens[:, 1:]
        else:
            lengths = rng.integers(length // 2, length + 1, batch)
            padding_mask = (np.arange(length)[None, :] < lengths[:, None]).astype("int32")
            inputs = {
                "token_ids": tokens[:, :-1] * padding_mask,
                "segment_ids": np.zeros((batch, length), "int32"),
                "padding_mask": padding_mask,
            }
            targets = (tokens[:, 1] % 2).astype("int32")
        batches.append((inputs, targets))
    return batches


# --- Models ---------------------------------------------------------------------------------


def build_tfllm(spec):
    """The tfllm model for `spec` (uncompiled)."""
    from tfllm.models import BERT, GPT, BERTClassifier

    config = dict(spec["config"], dropout=spec["dropout"], **spec.get("tfllm_options", {}))
    if spec["family"] == "gpt":
        return GPT(dtype=spec["precision"], **config)
    backbone = BERT(dtype=spec["precision"], **config)
    return BERTClassifier(backbone, num_classes=2, dropout=spec["dropout"])


def build_keras_hub(spec, tfllm_model=None):
    """The keras-hub model for `spec`, holding `tfllm_model`'s weights when one is given."""
    import keras_hub

    config = dict(spec["config"], dropout=spec["dropout"])
    if spec["family"] == "gpt":
        backbone = keras_hub.models.GPT2Backbone(dtype=spec["precision"], **config)
        if tfllm_model is not None:
            _copy_gpt(tfllm_model, backbone)
        return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    backbone = keras_hub.models.BertBackbone(dtype=spec["precision"], **config)
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None, dropout=spec["dropout"])
    if tfllm_model is not None:
        _copy_bert(tfllm_model, model)
    return model


def _values(variable):
    """A copy of `variable`'s value: on JAX, assigning the variable itself would share its
    buffer, which the other model's compiled step then donates (deletes)."""
    return keras.ops.convert_to_numpy(variable)


def _copy_block(block, target, num_heads):
    """tfllm `TransformerBlock` weights into a keras-hub Transformer{Decoder,Encoder} layer.

    tfllm's fused query/key/value kernel `(hidden, 3 * hidden)` is laid out
    `[query | key | value]`, each head-major, so it splits into keras-hub's three
    `(hidden, heads, head_dim)` einsum kernels by a reshape.
    """
    hidden = block.qkv_dense.kernel.shape[0]
    head_dim = hidden // num_heads
    attention = target._self_attention_layer
    kernel = keras.ops.convert_to_numpy(block.qkv_dense.kernel).reshape(hidden, 3, num_heads, head_dim)
    bias = keras.ops.convert_to_numpy(block.qkv_dense.bias).reshape(3, num_heads, head_dim)
    for j, dense in enumerate([attention._query_dense, attention._key_dense, attention._value_dense]):
        dense.kernel.assign(kernel[:, j])
        dense.bias.assign(bias[j])
    output_kernel = keras.ops.convert_to_numpy(block.attention_output_dense.kernel)
    attention._output_dense.kernel.assign(output_kernel.reshape(num_heads, head_dim, hidden))
    attention._output_dense.bias.assign(_values(block.attention_output_dense.bias))
    target._self_attention_layer_norm.set_weights(block.attention_layer_norm.get_weights())
    target._feedforward_layer_norm.set_weights(block.feedforward_layer_norm.get_weights())
    target._feedforward_intermediate_dense.set_weights(block.feedforward_intermediate_dense.get_weights())
    target._feedforward_output_dense.set_weights(block.feedforward_output_dense.get_weights())


def _copy_gpt(model, backbone):
    backbone.token_embedding.embeddings.assign(_values(model.token_embedding.embeddings))
    backbone.position_embedding.position_embeddings.assign(_values(model.position_embedding.embeddings))
    for block, target in zip(model.transformer_blocks, backbone.transformer_layers, strict=True):
        _copy_block(block, target, backbone.num_heads)
    backbone.layer_norm.set_weights(model.final_layer_norm.get_weights())


def _copy_bert(classifier, target):
    encoder = classifier.backbone
    backbone = target.backbone
    backbone.token_embedding.embeddings.assign(_values(encoder.token_embedding.embeddings))
    backbone.position_embedding.position_embeddings.assign(_values(encoder.position_embedding.embeddings))
    backbone.segment_embedding.set_weights(encoder.segment_embedding.get_weights())
    backbone.embeddings_layer_norm.set_weights(encoder.embeddings_layer_norm.get_weights())
    for block, layer in zip(encoder.transformer_blocks, backbone.transformer_layers, strict=True):
        _copy_block(block, layer, backbone.num_heads)
    backbone.pooled_dense.set_weights(encoder.pooler_dense.get_weights())
    target.output_dense.set_weights(classifier.output_dense.get_weights())


def compile_model(model, spec, library):
    """Compiles with the optimizer every library gets, the library's loss and the case's XLA setting."""
    if library == "tfllm":
        from tfllm.training import SparseCrossEntropy

        loss = SparseCrossEntropy()
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras.Model.compile(
        model,
        optimizer=keras.optimizers.AdamW(learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        loss=loss,
        jit_compile=spec["xla"],
    )
    return model


def build_pair(spec, seed=0):
    """Both libraries' compiled models for `spec`, with the same initial weights.

    Returns:
        A dict `{"tfllm": model, "keras-hub": model}`.
    """
    keras.utils.set_random_seed(seed)
    tfllm_model = build_tfllm(spec)
    keras_hub_model = build_keras_hub(spec, tfllm_model)
    return {
        "tfllm": compile_model(tfllm_model, spec, "tfllm"),
        "keras-hub": compile_model(keras_hub_model, spec, "keras-hub"),
    }


def build_one(spec, library, seed=0):
    """One library's compiled model for `spec` (for memory measurements in their own process)."""
    if library not in LIBRARIES:
        raise ValueError(f"`library` must be one of {LIBRARIES}. Received: library={library!r}")
    keras.utils.set_random_seed(seed)
    model = build_tfllm(spec) if library == "tfllm" else build_keras_hub(spec)
    return compile_model(model, spec, library)


# --- FLOPs ------------------------------------------------------------------------------------


def flops_per_token(spec, model):
    """Training FLOPs per token as nanoGPT's `estimate_mfu` counts them: `6N + 12·L·H·T`.

    `N` is the parameter count without the position embeddings (nanoGPT's `non_embedding`
    count; the token embedding stays in since GPT's tied output projection is a real matmul).
    For the BERT classifier the token and segment embeddings are left out too: no matmul uses
    them. `L` layers, `H` the hidden size (heads × head size), `T` the sequence length.
    """
    config = spec["config"]
    num_params = model.count_params()
    num_params -= config["max_sequence_length"] * config["hidden_dim"]
    if spec["family"] == "bert":
        num_params -= (config["vocabulary_size"] + config["num_segments"]) * config["hidden_dim"]
    return 6 * num_params + 12 * config["num_layers"] * config["hidden_dim"] * spec["sequence_length"]


# --- Timing -----------------------------------------------------------------------------------


class _Trainer:
    """Steps one compiled model through the shared batches, keeping its losses.

    On TensorFlow each step is `train_on_batch`. On JAX, `train_on_batch` would write every
    variable back into the model and read the loss after each step, which an accelerator's
    steps of a few tens of milliseconds would feel; the trainer does what `fit` does instead:
    after a first `train_on_batch` (which builds and compiles), it carries Keras's training
    state through the model's own compiled `train_function`, so steps queue on the device
    while Python prepares the next, and writes the state back in `finish`. Both libraries
    are stepped the same way.
    """

    def __init__(self, model, batches):
        self.model = model
        # Tensors up front: no NumPy conversion inside the timed steps.
        self.batches = [keras.tree.map_structure(keras.ops.convert_to_tensor, batch) for batch in batches]
        self.losses = []
        self._carries_state = keras.backend.backend() == "jax"
        self._state = None

    def run(self, steps):
        """Trains `steps` steps and returns once they have finished (their losses read)."""
        first = len(self.losses)
        losses = [self._step(*self.batches[(first + i) % len(self.batches)]) for i in range(steps)]
        self.losses.extend(float(loss) for loss in losses)

    def _step(self, inputs, targets):
        if self._state is None:
            # `train_on_batch` returns the loss as a Python float, which waits for the step.
            loss = self.model.train_on_batch(inputs, targets, return_dict=True)["loss"]
            if self._carries_state:
                # (trainable, non-trainable, optimizer, metrics) variables' values, as `fit` takes them.
                self._state = self.model._get_jax_state(True, True, True, True)
            return loss
        trainable, non_trainable, optimizer, metrics = self._state
        # Fresh metric accumulators, so that the logged loss is this step's alone (as
        # `train_on_batch`'s `reset_metrics` makes it); the compiled step donates its state.
        metrics = [keras.ops.zeros_like(value) for value in metrics]
        logs, self._state = self.model.train_function(
            (trainable, non_trainable, optimizer, metrics), iter([(inputs, targets, None)])
        )
        return logs["loss"]

    def finish(self):
        """Writes the carried state back into the model's variables (JAX)."""
        if self._state is None:
            return
        names = ("trainable_variables", "non_trainable_variables", "optimizer_variables", "metrics_variables")
        self.model._jax_state = dict(zip(names, self._state))
        self.model._jax_state_synced = False
        self.model.jax_state_sync()
        self._state = None


def time_pair(spec, steps=3, repeats=5, warmup=2, seed=0, libraries=LIBRARIES, matmul_peak=None, profile=None):
    """Trains both libraries' models for `spec` alternately and measures them.

    Args:
        spec: a dict from `case`.
        steps: training steps per library per round.
        repeats: rounds; the medians are over these.
        warmup: untimed steps first (the first one compiles).
        seed: seed of the weights and the data.
        libraries: which libraries to run (both by default).
        matmul_peak: optional dict `{"float32": GFLOP/s, "bfloat16": GFLOP/s}` for the MFU.
        profile: optional callable, given `{library: trainer}` after the timed rounds, that
            profiles further steps (each trainer's `run(steps)` trains on) and returns
            `{library: a JSON-serializable summary}`, stored as that library's `profile`
            (`benchmarks.gpu` passes one).

    Returns:
        A list with one result dict per library: `seconds_per_step` (median), `tokens_per_second`,
        `speedup_vs_keras_hub` (median of per-round ratios), `mfu`, `final_loss` (the mean of the
        last `steps` timed losses), `losses` (warm-up and timed) and the raw per-round
        `round_seconds`.
    """
    models = build_pair(spec, seed)
    models = {name: models[name] for name in libraries}
    trainers = {name: _Trainer(model, make_batches(spec, seed=seed)) for name, model in models.items()}
    names = list(trainers)
    for name in names:
        trainers[name].run(warmup)
    seconds = {name: [] for name in names}
    for repeat in range(repeats):
        # Rotate the order so that no library always runs right after the other.
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            start = time.perf_counter()
            trainers[name].run(steps)
            seconds[name].append((time.perf_counter() - start) / steps)

    # The timed steps' losses: the steps a profile adds are not part of the measurement.
    losses = {name: list(trainer.losses) for name, trainer in trainers.items()}
    profiles = profile(trainers) if profile is not None else {}
    for trainer in trainers.values():
        trainer.finish()

    tokens_per_step = spec["batch_size"] * spec["sequence_length"]
    peak_dtype = "bfloat16" if spec["precision"] == "mixed_bfloat16" else "float32"
    results = []
    for name in names:
        median = statistics.median(seconds[name])
        tokens_per_second = tokens_per_step / median
        flops = flops_per_token(spec, models[name])
        result = dict(
            spec,
            library=name,
            seconds_per_step=median,
            tokens_per_second=tokens_per_second,
            round_seconds=seconds[name],
            flops_per_token=flops,
            achieved_gflops=flops * tokens_per_second / 1e9,
            final_loss=statistics.fmean(losses[name][-steps:]),
            losses=losses[name],
        )
        if name in profiles:
            result["profile"] = profiles[name]
        if "keras-hub" in seconds:
            ratios = [base / mine for base, mine in zip(seconds["keras-hub"], seconds[name])]
            result["speedup_vs_keras_hub"] = statistics.median(ratios)
        if matmul_peak:
            result["mfu"] = result["achieved_gflops"] / matmul_peak[peak_dtype]
        results.append(result)
    del models, trainers
    keras.backend.clear_session()
    return results


def describe(spec):
    """A short label such as `float32, dropout 0.1, XLA`."""
    return f"{spec['precision']}, dropout {spec['dropout']:g}, {'XLA' if spec['xla'] else 'no XLA'}"


def print_result(results):
    for row in results:
        speedup = row.get("speedup_vs_keras_hub")
        mfu = row.get("mfu")
        print(
            f"{row['name']:<11} {describe(row):<36} {row['library']:<9} {row['seconds_per_step'] * 1000:>9.1f} ms/step "
            f"{row['tokens_per_second']:>9.0f} tok/s"
            + (f"  x{speedup:.2f}" if speedup is not None else "")
            + (f"  MFU {100 * mfu:.0f}%" if mfu is not None else "")
            + f"  loss {row['final_loss']:.4f}",
            flush=True,
        )

