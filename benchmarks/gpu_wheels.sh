#!/usr/bin/env bash
# Downloads into .whl/ the wheels that `python -m benchmarks.gpu` needs on a GPU machine that
# has Python 3.12 and JAX but no TensorFlow and no network: Keras, keras-hub and the two
# packages of Keras's that such an image lacks (namex, optree). Nothing else is imported there:
# tfllm's layers, models and training, and keras-hub's models, run without TensorFlow.
#
# There, from the repository root (with .whl/ carried along):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site KERAS_BACKEND=jax python3 -m benchmarks.gpu
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=.git/info/exclude
if [ -d .git ] && ! grep -qx '/.whl/' "$exclude" 2>/dev/null; then
    echo /.whl/ >> "$exclude"
fi
platforms=()
for platform in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$platform")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl keras==3.15.1 keras-hub==0.32.0 namex==0.1.0 optree==0.20.0
ls -l .whl
