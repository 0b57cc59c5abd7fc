"""Trains a tiny GPT on JAX without a distribution, under `DataParallel` and under
`ModelParallel`, and prints what tests/training/test_keras_distribution.py checks, as JSON.

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python tests/training/keras_distribution_fit.py DIRECTORY [STEPS]

The XLA flag splits the CPU into two JAX devices; it must be set before JAX starts, hence a
process of its own. Every case sees the same global batches (`distributed_fit.dataset`) in
the same order from the same initial weights. DIRECTORY receives the ModelParallel model.

    KERAS_BACKEND=jax KERAS_DISTRIBUTION_JOB_ADDRESSES=localhost:PORT \
        KERAS_DISTRIBUTION_NUM_PROCESSES=2 KERAS_DISTRIBUTION_PROCESS_ID=I \
        python tests/training/keras_distribution_fit.py --processes data|model [STEPS]

is process I of a multi-process JAX job (`keras.distribution.initialize` reads those
variables), each with one CPU device: it trains under the distribution over both processes'
devices and prints its process index, the global device count and the losses.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # tests.examples

from distributed_fit import GLOBAL_BATCH_SIZE, dataset  # noqa: E402


def train(name, steps):
    """`(model, losses)`: a `gpt-test` trained `steps` steps of plain SGD under the
    distribution `name` (None: none), and the loss of each step."""
    import keras

    import tfllm
    from tfllm.training import distribute

    distribution = distribute.distribution(name) if name else None
    if distribution is not None:
        distribute.per_replica_batch_size(GLOBAL_BATCH_SIZE, distribution)
    keras.distribution.set_distribution(distribution)
    try:
        keras.utils.set_random_seed(0)
        model = tfllm.models.GPT("gpt-test")
        # Plain SGD, as in distributed_fit.py: Adam would magnify rounding in near-zero gradients.
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss=tfllm.training.SparseCrossEntropy())
        means = []
        record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: means.append(logs["loss"]))
        model.fit(dataset(steps, model.vocabulary_size), epochs=1, callbacks=[record], verbose=0)
    finally:
        keras.distribution.set_distribution(None)
    # The logs hold the epoch's running mean; step k's own loss is (k + 1) m_k - k m_(k-1).
    losses = [(k + 1) * mean - k * (means[k - 1] if k else 0.0) for k, mean in enumerate(means)]
    return model, losses


def layouts(model):
    """Each weight's path -> `(devices, axes)`: how many devices hold it, and its sharding, the
    mesh axis name or None for each dimension."""
    result = {}
    for weight in model.weights:
        sharding = weight.value.sharding
        axes = list(getattr(sharding, "spec", ()))
        result[weight.path] = (len(sharding.device_set), axes + [None] * (len(weight.shape) - len(axes)))
    return result


def errors(directory):
    """The messages of the `ValueError`s for an indivisible batch, an unknown name, a weight that
    does not split over the model axis, and a tf.distribute strategy on JAX, from
    `tfllm.training.distribute` and through train_gpt.py's flags."""
    from tests.examples.conftest import load_example
    from tfllm.training import distribute

    train_gpt = load_example("train_gpt")
    flags = ["--output-dir", os.path.join(directory, "unused")]
    messages = {}
    for case, attempt in {
        "batch": lambda: distribute.per_replica_batch_size(3, distribute.distribution("data")),
        "name": lambda: distribute.distribution("pipeline"),
        "shardable": lambda: distribute.check_shardable(distribute.distribution("model"), vocabulary_size=301),
        "strategy": lambda: distribute.strategy("mirrored"),
        "flag_batch": lambda: train_gpt.harness.start(
            train_gpt.parse_args([*flags, "--distribution", "data", "--batch-size", "3"])
        ),
        "flag_strategy": lambda: train_gpt.harness.start(train_gpt.parse_args([*flags, "--strategy", "mirrored"])),
    }.items():
        try:
            attempt()
            messages[case] = None
        except ValueError as error:
            messages[case] = str(error)
    return messages


def main(directory, steps):
    import jax
    import keras
    import numpy as np

    _, single = train(None, steps)
    data_model, data_parallel = train("data", steps)
    model, model_parallel = train("model", steps)
    features, _ = next(iter(dataset(1, model.vocabulary_size)))
    features = {key: np.asarray(value) for key, value in features.items()}
    predictions = np.asarray(model.predict(features, verbose=0))
    path = os.path.join(directory, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no distribution set
    return {
        "devices": jax.device_count(),
        "losses": {"single": single, "data": data_parallel, "model": model_parallel},
        "layouts": {"data": layouts(data_model), "model": layouts(model)},
        "reloaded_devices": sorted({str(device) for weight in reloaded.weights for device in weight.value.devices()}),
        "reloaded_difference": float(np.max(np.abs(np.asarray(reloaded.predict(features, verbose=0)) - predictions))),
        "errors": errors(directory),
    }


def one_of_processes(name, steps):
    """Process `KERAS_DISTRIBUTION_PROCESS_ID` of a multi-process job trained under `name`."""
    import keras

    keras.distribution.initialize()  # before JAX starts its devices
    import jax

    _, losses = train(name, steps)
    return {"process": jax.process_index(), "devices": jax.device_count(), "losses": losses}


if __name__ == "__main__":
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    if sys.argv[1] == "--processes":
        print(json.dumps(one_of_processes(sys.argv[2], steps)))
    else:
        print(json.dumps(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4)))
