"""Data-parallel training with `tf.distribute` and plain `model.fit` (TensorFlow backend).

One name chooses the engine (`strategy`); the model is built and compiled inside
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

    `model.fit` under a strategy takes batches of the global size and gives each replica an
    equal share, so one optimizer step sees `global_batch_size` examples whatever the number of
    replicas (and the same seed trains the same model, up to rounding).

    Raises:
        ValueError: if `global_batch_size` is not a positive multiple of the replica count.
    """
    replicas = distribution.num_replicas_in_sync
    if global_batch_size <= 0 or global_batch_size % replicas:
        raise ValueError(
            f"The global batch size must be a positive multiple of the {replicas} replicas in sync, so that each "
            f"replica gets an equal share. Received: global_batch_size={global_batch_size}"
        )
    return global_batch_size // replicas


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
