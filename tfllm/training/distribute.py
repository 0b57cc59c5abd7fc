"""Distributed training with plain `model.fit`: `tf.distribute` on TensorFlow, `keras.distribution` on JAX.

**TensorFlow.** One name chooses the engine (`strategy`); the model is built and compiled inside
`strategy.scope()`; the dataset is batched with the *global* batch size, which the strategy
splits across its replicas (`per_replica_batch_size` checks that it divides); `fit` trains.
Only the chief writes checkpoints, metrics and exports (`is_chief`, `output_dir`).

    distribution = distribute.strategy("multi-worker")   # reads and checks TF_CONFIG
    distribute.per_replica_batch_size(global_batch_size, distribution)
    with distribution.scope():
        model = tfllm.models.GPT("gpt-test")
        model.compile(optimizer="adamw", loss=tfllm.training.SparseCrossEntropy(), jit_compile=False)
    distribute.fit(model, dataset.batch(global_batch_size), epochs=1)
    model.save(os.path.join(distribute.output_dir("runs/gpt", distribution), "model.keras"))

XLA cannot compile a step that holds the replicas' collective operations, hence
`jit_compile=False`. Gradients are averaged over the global batch: each replica's loss is its mean over its share
of the batch divided by the number of replicas (Keras's `scale_loss_for_distribution`), and the
replicas' gradients are summed. Any Keras loss with the default `"sum_over_batch_size"`
reduction, `tfllm.training.SparseCrossEntropy` included, is scaled right this way.

**JAX.** `distribution("data")` replicates the model on every device and splits each batch
(`keras.distribution.DataParallel`); `distribution("model")` also shards the transformer
weights over a device mesh's `"model"` axis with tfllm's Megatron-style `layout_map`
(`keras.distribution.ModelParallel`). Set it before the model is built; XLA compiles the
whole step, its collectives included, so `jit_compile` stays on:

    keras.distribution.set_distribution(distribute.distribution("model"))
    distribute.per_replica_batch_size(global_batch_size, keras.distribution.distribution())
    model = tfllm.models.GPT("gpt-test")
    model.compile(optimizer="adamw", loss=tfllm.training.SparseCrossEntropy())
    model.fit(dataset.batch(global_batch_size), epochs=1)
    model.save("model.keras")   # whole weights, loadable with no distribution set
"""

import json
import os
import tempfile

import keras

STRATEGIES = ("none", "mirrored", "multi-worker")


def strategy(name="none"):
    """The `tf.distribute.Strategy` called `name`.

    Args:
        name: `"none"` (TensorFlow's default strategy: one device, no replicas),
            `"mirrored"` (`MirroredStrategy`: one replica per local GPU, or the CPU) or
            `"multi-worker"` (`MultiWorkerMirroredStrategy`: one process per machine, the
            cluster described by the `TF_CONFIG` environment variable, checked first by
            `cluster_config`).

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: for another name, a bad `TF_CONFIG`, or a Keras backend other than
            TensorFlow (`tf.distribute` strategies exist only there; on JAX use
            `keras.distribution`).
    """
    if name not in STRATEGIES:
        raise ValueError(f"`name` must be one of {', '.join(STRATEGIES)}. Received: name={name!r}")
    if keras.config.backend() != "tensorflow":
        raise ValueError(
            f"The {name!r} strategy is a tf.distribute strategy, and tf.distribute strategies exist only on the "
            f"TensorFlow backend; Keras runs on {keras.config.backend()!r} here (KERAS_BACKEND). "
            "On JAX, distribute with keras.distribution (DataParallel, ModelParallel)."
        )
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    cluster_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def cluster_config(environ=None):
    """The `TF_CONFIG` of a multi-worker job, parsed and checked.

    `TF_CONFIG` is JSON: `{"cluster": {"worker": ["host:port", ...]}, "task": {"type":
    "worker", "index": i}}`, the same cluster on every machine and each its own task (a
    `"chief"` job of one address may be listed beside the workers).

    Args:
        environ: the environment to read (default `os.environ`).

    Returns:
        The parsed dict.

    Raises:
        ValueError: naming what is missing or wrong.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "The multi-worker strategy reads the cluster from the TF_CONFIG environment variable, which is not set. "
            'Set it on each machine, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' (index 1 on the second).'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}). Received: {text!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task'. Received: {text!r}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"TF_CONFIG has no 'cluster' (job name -> list of 'host:port'). Received: {text!r}")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
            raise ValueError(
                f"TF_CONFIG's cluster job {job!r} must be a non-empty list of 'host:port' strings. "
                f"Received: {addresses!r}"
            )
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(f"TF_CONFIG has no 'task' with a 'type' and an 'index'. Received: {text!r}")
    task_type, index = task["type"], task["index"]
    if task_type not in cluster:
        raise ValueError(
            f"TF_CONFIG's task type {task_type!r} is not a job in its cluster ({', '.join(map(repr, cluster))})."
        )
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task_type]):
        raise ValueError(
            f"TF_CONFIG's task index {index!r} is out of range: the {task_type!r} job has "
            f"{len(cluster[task_type])} address(es), so the index must be 0 to {len(cluster[task_type]) - 1}."
        )
    return config


def per_replica_batch_size(global_batch_size, distribution):
    """The batch each replica trains on when the dataset is batched with `global_batch_size`.

    `model.fit` under a `tf.distribute` strategy or a `keras.distribution` takes batches of the
    global size and gives each data-parallel replica an equal share (`replica_count`), so one
    optimizer step sees `global_batch_size` examples whatever the number of replicas (and the
    same seed trains the same model, up to rounding).

    Raises:
        ValueError: if `global_batch_size` is not a positive multiple of the replica count.
    """
    replicas = replica_count(distribution)
    if global_batch_size <= 0 or global_batch_size % replicas:
        raise ValueError(
            f"The global batch size must be a positive multiple of the {replicas} replicas in sync, so that each "
            f"replica gets an equal share. Received: global_batch_size={global_batch_size}"
        )
    return global_batch_size // replicas


def replica_count(distribution):
    """How many shares each batch is split into: a `tf.distribute.Strategy`'s replicas in sync,
    or the size of a `keras.distribution.Distribution`'s batch axis (its data-parallel axis)."""
    if hasattr(distribution, "num_replicas_in_sync"):
        return distribution.num_replicas_in_sync
    mesh = distribution.device_mesh
    return mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)]


DISTRIBUTIONS = ("data", "model")

# Megatron-LM's tensor parallelism for tfllm's transformer blocks (`TransformerBlock`), as
# `keras.distribution.LayoutMap` entries: variable path (a regex matched against the whole
# path) -> one mesh axis name or None per dimension of the variable. The first projection of
# each sub-layer (the fused query/key/value one and the feed-forward intermediate one) is split
# on its output axis, the second (attention output, feed-forward output) on its input axis, so
# each device computes its share of the heads and of the intermediate units from the whole
# input, and one sum across the "model" axis after the second projection completes the result.
# The token embedding (also GPT's tied output projection) is split by vocabulary. Every other
# variable (biases, layer norms, position and segment embeddings, BERT's pooler and heads) is
# replicated. `(?:.*/)?` lets the block sit in another model (a BERT inside a classifier).
MEGATRON_LAYOUT = {
    r"(?:.*/)?token_embedding/embeddings": ("model", None),  # (vocabulary, hidden)
    r"(?:.*/)?qkv_dense/kernel": (None, "model"),  # (hidden, 3 * attention_dim)
    r"(?:.*/)?attention_output_dense/kernel": ("model", None),  # (attention_dim, hidden)
    r"(?:.*/)?feedforward_intermediate_dense/kernel": (None, "model"),  # (hidden, intermediate)
    r"(?:.*/)?feedforward_output_dense/kernel": ("model", None),  # (intermediate, hidden)
}


def layout_map(device_mesh):
    """tfllm's Megatron-style `keras.distribution.LayoutMap` for its GPT and BERT
    (`MEGATRON_LAYOUT`) on `device_mesh`, a `keras.distribution.DeviceMesh` with a `"model"`
    axis.

    Each sharded dimension must divide by the size of the `"model"` axis: the vocabulary size,
    `3 * num_heads * head_dim`, `num_heads * head_dim` and `intermediate_dim`.
    """
    if "model" not in device_mesh.axis_names:
        raise ValueError(f"The device mesh needs a 'model' axis. Received: axis_names={device_mesh.axis_names}")
    layouts = keras.distribution.LayoutMap(device_mesh)
    for path, axes in MEGATRON_LAYOUT.items():
        layouts[path] = axes
    return layouts


def check_shardable(distribution, **dimensions):
    """Checks that the `"model"` axis of `distribution` divides every dimension tfllm's
    `layout_map` shards, given by name (e.g. `vocabulary_size=..., hidden_dim=...,
    intermediate_dim=...`), before a model of those sizes is built; JAX refuses to split an
    array unevenly. Does nothing without a `"model"` axis (no distribution, `DataParallel`).

    Raises:
        ValueError: naming each dimension the axis does not divide.
    """
    mesh = getattr(distribution, "device_mesh", None)
    if mesh is None or "model" not in mesh.axis_names:
        return
    size = mesh.shape[mesh.axis_names.index("model")]
    indivisible = [f"{name}={value}" for name, value in dimensions.items() if value % size]
    if indivisible:
        raise ValueError(
            f"ModelParallel splits the model's weights into {size} shards along these sizes, which must be "
            f"multiples of {size}. Received: {', '.join(indivisible)}"
        )


def distribution(name, model_parallel=None):
    """The `keras.distribution.Distribution` called `name`, over every device (JAX backend).

    Args:
        name: `"data"` (`DataParallel`: the model replicated on every device, each batch split
            across them) or `"model"` (`ModelParallel`: a `DeviceMesh` of shape
            `(devices / model_parallel, model_parallel)`, axes `("data", "model")`, with
            tfllm's `layout_map` sharding the transformer weights over `"model"` and each
            batch split over `"data"`).
        model_parallel: for `"model"`, the size of the `"model"` axis, a divisor of the device
            count (default: every device, so no data parallelism).

    Returns:
        A `keras.distribution.Distribution`, to give `keras.distribution.set_distribution`
        (or use as `with distribution.scope():`) before the model is built.

    Raises:
        ValueError: for another name, a `model_parallel` that does not divide the device count,
            or a Keras backend other than JAX (Keras supports `keras.distribution` only there;
            on TensorFlow use `strategy`).
    """
    if name not in DISTRIBUTIONS:
        raise ValueError(f"`name` must be one of {', '.join(DISTRIBUTIONS)}. Received: name={name!r}")
    if keras.config.backend() != "jax":
        raise ValueError(
            f"The {name!r} distribution is a keras.distribution, which Keras supports only on the JAX backend; "
            f"Keras runs on {keras.config.backend()!r} here (KERAS_BACKEND). On TensorFlow, distribute with "
            "tf.distribute strategies (mirrored, multi-worker)."
        )
    devices = keras.distribution.list_devices()
    if name == "data":
        return keras.distribution.DataParallel(devices=devices)
    model_parallel = len(devices) if model_parallel is None else model_parallel
    if not isinstance(model_parallel, int) or model_parallel <= 0 or len(devices) % model_parallel:
        raise ValueError(
            f"`model_parallel` must be a positive divisor of the {len(devices)} devices. "
            f"Received: model_parallel={model_parallel!r}"
        )
    mesh = keras.distribution.DeviceMesh(
        (len(devices) // model_parallel, model_parallel), axis_names=("data", "model"), devices=devices
    )
    return keras.distribution.ModelParallel(layout_map=layout_map(mesh), batch_dim_name="data")


def is_chief(distribution=None):
    """Whether this process writes the run's outputs (checkpoints, metrics, exports).

    True except under a multi-worker strategy, where the chief is the `"chief"` task if the
    cluster has one, else worker 0.
    """
    import tensorflow as tf

    distribution = distribution or tf.distribute.get_strategy()
    resolver = getattr(distribution, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if "chief" in resolver.cluster_spec().as_dict():
        return task_type == "chief"
    return task_type in (None, "worker") and (task_id or 0) == 0


def output_dir(directory, distribution=None):
    """`directory` for the chief; a new temporary directory for any other worker.

    Every worker runs the same script, and saving (`model.save`, callbacks) may take part in
    collective operations, so each worker saves; only the chief's files are kept.
    """
    if is_chief(distribution):
        return directory
    return tempfile.mkdtemp(prefix="tfllm-worker-")


def fit(model, x=None, **fit_kwargs):
    """`model.fit(x, **fit_kwargs)` under the strategy `model` was built in.

    Under `MultiWorkerMirroredStrategy` it first makes the model able to train there
    (`multi_worker_compatible`) and shards `x` and `validation_data` by batch
    (`shard_by_batch`); under any other strategy it is `model.fit`.
    """
    if _is_multi_worker(model):
        multi_worker_compatible(model)
        x = shard_by_batch(x)
        if "validation_data" in fit_kwargs:
            fit_kwargs["validation_data"] = shard_by_batch(fit_kwargs["validation_data"])
    return model.fit(x, **fit_kwargs)


def evaluate(model, x=None, **evaluate_kwargs):
    """`model.evaluate(x, **evaluate_kwargs)`, made to work under `MultiWorkerMirroredStrategy`
    as `fit` is."""
    if _is_multi_worker(model):
        multi_worker_compatible(model)
        x = shard_by_batch(x)
    return model.evaluate(x, **evaluate_kwargs)


def shard_by_batch(dataset):
    """`dataset` with the `DATA` auto-shard policy: under a multi-worker strategy each worker
    reads the whole input and keeps its share of every batch.

    TensorFlow's default policy shards by file when the input reads files, and fails when there
    are fewer files than workers ("Could not apply FILE based sharding: the dataset only has 1
    file(s)"), as with a single text corpus. Anything but a `tf.data.Dataset` is returned as is.
    """
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def multi_worker_compatible(model):
    """Makes `model.fit` and `model.evaluate` work under `MultiWorkerMirroredStrategy`.

    Keras 3's TensorFlow trainer (3.15 here; reported since 3.5) fails there before the first
    step, in two places; this changes both on `model` (this instance only, for every later `fit` and
    `evaluate`; calling it again does nothing). Upstream:
    https://github.com/keras-team/keras/issues/20585,
    https://github.com/keras-team/keras/issues/20329,
    https://github.com/tensorflow/tensorflow/issues/72388.

    1. A model made under a strategy is built from the first distributed batch averaged across
       replicas, `strategy.reduce("MEAN", batch, axis=None)`, only to read its shapes. `reduce`
       takes one value, not a structure: `MirroredStrategy` passes the structure through, but
       the multi-worker collective converts it to a tensor and fails on any dict or tuple batch
       ("Attempt to convert a value ({'token_ids': PerReplica...}) with an unsupported type
       (<class 'dict'>) to a Tensor"). Here the model builds from the dataset's `element_spec`
       instead: the same shapes and dtypes, and no collective on the input. Other input (an
       in-memory batch, a `DistributedDataset`) goes to Keras's own method.
    2. Each step's logs are averaged across workers with `strategy.reduce("MEAN", value,
       axis=0)`, which fails on the scalar loss and metrics ("Invalid reduction dimension 0 for
       input with 0 dimensions"). Here the training and test steps give each scalar a leading
       axis of length 1, so that reduction averages across the replicas and returns a scalar
       again: the value Keras means to log.

    Returns:
        `model`.
    """
    if getattr(model, "_multi_worker_compatible", False):
        return model
    import tensorflow as tf

    keras_build = model._maybe_symbolic_build

    def maybe_symbolic_build(iterator=None, data_batch=None):
        dataset = iterator.data_adapter.get_tf_dataset() if iterator is not None else None
        if model._distribute_strategy is None or not isinstance(dataset, tf.data.Dataset):
            return keras_build(iterator=iterator, data_batch=data_batch)
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=dataset.element_spec)

    model._maybe_symbolic_build = maybe_symbolic_build
    model.train_step = _scalars_with_batch_axis(model.train_step)
    model.test_step = _scalars_with_batch_axis(model.test_step)
    model._multi_worker_compatible = True
    return model


def _scalars_with_batch_axis(step):
    def with_batch_axis(value):
        return keras.ops.expand_dims(value, 0) if len(value.shape) == 0 else value

    def step_with_batch_axis(data):
        return keras.tree.map_structure(with_batch_axis, step(data))

    return step_with_batch_axis


def _is_multi_worker(model):
    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)
