"""Trains a tiny GPT with `tfllm.training.distribute.fit` and prints its per-step losses as JSON.

Run by tests/training/test_distribute.py, each distributed case in processes of its own
because a strategy fixes the process's devices:

    python tests/training/distributed_fit.py none|mirrored|multi-worker [STEPS]

"mirrored" splits the CPU into two logical devices first; "multi-worker" reads TF_CONFIG.
Every case sees the same global batches in the same order from the same initial weights.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GLOBAL_BATCH_SIZE = 8
SEQUENCE_LENGTH = 16


def dataset(steps, vocabulary_size):
    """`steps` global batches of counting windows (each token one more than the last, from a
    random start) to learn, labels the windows shifted by one."""
    import numpy as np
    import tensorflow as tf

    starts = np.random.default_rng(0).integers(0, vocabulary_size, (steps * GLOBAL_BATCH_SIZE, 1))
    tokens = (starts + np.arange(SEQUENCE_LENGTH + 1)) % vocabulary_size
    features = {"token_ids": tokens[:, :-1].astype("int32"), "padding_mask": np.ones_like(tokens[:, :-1], "int32")}
    return tf.data.Dataset.from_tensor_slices((features, tokens[:, 1:].astype("int32"))).batch(GLOBAL_BATCH_SIZE)


def train(name, steps):
    """`{"replicas", "chief", "losses"}`: the strategy's replica count, whether this process is
    the chief, and the loss of each of `steps` steps."""
    import tensorflow as tf

    if name == "mirrored":
        # Must come before anything initialises TensorFlow's devices.
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras

    import tfllm
    from tfllm.training import distribute

    distribution = distribute.strategy(name)
    distribute.per_replica_batch_size(GLOBAL_BATCH_SIZE, distribution)
    keras.utils.set_random_seed(0)
    with distribution.scope():
        model = tfllm.models.GPT("gpt-test")
        # Plain SGD: Adam's first steps move every weight by about the learning rate whatever the
        # gradient's size, so rounding in a near-zero gradient would grow into differences in
        # the loss. XLA cannot compile a step that holds cross-replica collectives.
        optimizer = keras.optimizers.SGD(1.0)
        model.compile(optimizer=optimizer, loss=tfllm.training.SparseCrossEntropy(), jit_compile=False)
    means = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: means.append(logs["loss"]))
    distribute.fit(model, dataset(steps, model.vocabulary_size), epochs=1, callbacks=[record], verbose=0)
    # The logs hold the epoch's running mean; step k's own loss is (k + 1) m_k - k m_(k-1).
    losses = [(k + 1) * mean - k * (means[k - 1] if k else 0.0) for k, mean in enumerate(means)]
    return {"replicas": distribution.num_replicas_in_sync, "chief": distribute.is_chief(distribution), "losses": losses}


if __name__ == "__main__":
    print(json.dumps(train(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4)))
