"""Per-op kernel times of one call, from `tf.profiler`: where a step's time goes.

`profile(function)` runs `function` once under the profiler and returns, per TensorFlow op type,
the kernel time summed over the executor's compute threads and the number of calls. On a
2-core machine two kernels may run at once and share the cores, so the figures say which ops
dominate, not how the wall time splits exactly. An XLA-compiled step shows as a few cluster
ops, so profile the plain graph (`jit_compile=False`) to see its parts.
"""

import collections
import glob
import os
import tempfile


def kernel_times(logdir):
    """`{op type: (total ms, calls)}` over the compute threads of the profile in `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    totals, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                name = (metadata.display_name or metadata.name).split(":")[-1]
                totals[name] += event.duration_ps / 1e9
                calls[name] += 1
    return {name: (totals[name], calls[name]) for name in totals}


def profile(function):
    """Runs `function()` once under `tf.profiler`; returns `kernel_times` of that run."""
    import tensorflow as tf

    logdir = tempfile.mkdtemp(prefix="tfllm-profile-")
    tf.profiler.experimental.start(logdir)
    try:
        function()
    finally:
        tf.profiler.experimental.stop()
    return kernel_times(logdir)


def table(times, top):
    """The `top` ops by total kernel time, as text lines."""
    lines = [f"{'op':<36} {'total ms':>9} {'calls':>7} {'us/call':>8}"]
    for name, (total, calls) in sorted(times.items(), key=lambda item: -item[1][0])[:top]:
        lines.append(f"{name:<36} {total:9.1f} {calls:7d} {1000 * total / calls:8.1f}")
    return lines
