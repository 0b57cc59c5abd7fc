"""The machine a benchmark ran on: a description and its measured matmul peak.

The peak is what a product of two large square matrices reaches in this process, in float32
and in bfloat16: the fastest of several timed products after a warm-up, each made both by
`tf.matmul` as it stands (oneDNN's kernels on a CPU) and by `tf.matmul` compiled with XLA
(Eigen's), since either can be the faster on a given CPU and the training steps use both. On
a machine shared with other work the rate varies with the load, so the benchmark measures it
before and after its training cases and keeps the higher figure. MFU figures divide
the achieved model FLOP rate by it, so they say how close a training step gets to the best dense
matmul rate seen on this machine in that run — not to a datasheet figure.
"""

import os
import platform
import time


def matmul_peak(size=2048, repeats=7, dtypes=("float32", "bfloat16")):
    """Measures the matmul throughput of two `(size, size)` matrices, with and without XLA.

    Args:
        size: int, the side of the square matrices.
        repeats: int, timed products per dtype and kernel (the fastest is kept: the peak).
        dtypes: the dtypes to measure.

    Returns:
        A dict `{dtype: GFLOP/s}` (2·size³ FLOPs per product).
    """
    import tensorflow as tf

    kernels = [tf.matmul, tf.function(tf.matmul, jit_compile=True)]
    peak = {}
    for dtype in dtypes:
        a = tf.random.normal((size, size), dtype="float32", seed=1)
        b = tf.random.normal((size, size), dtype="float32", seed=2)
        a, b = tf.cast(a, dtype), tf.cast(b, dtype)
        seconds = []
        for matmul in kernels:
            for _ in range(2):  # warm-up (XLA compiles)
                matmul(a, b).numpy()
            for _ in range(repeats):
                start = time.perf_counter()
                matmul(a, b).numpy()
                seconds.append(time.perf_counter() - start)
        peak[dtype] = 2 * size**3 / min(seconds) / 1e9
    return peak


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe():
    """A dict describing the machine and the library versions."""
    import keras
    import keras_hub
    import tensorflow as tf

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return dict(
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        load_average_1min=load,
        gpus=[device.name for device in tf.config.list_physical_devices("GPU")],
        python=platform.python_version(),
        tensorflow=tf.__version__,
        keras=keras.__version__,
        keras_hub=keras_hub.__version__,
        keras_backend=keras.backend.backend(),
    )
