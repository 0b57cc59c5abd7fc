#!/usr/bin/env bash
# The test command: the whole suite on the TensorFlow backend, then the backend-agnostic
# layers, models, generation, LoRA, distillation and pruning (int8 and bfloat16 are Keras's own,
# checked on TensorFlow; int8 generation is in tests/generation), the cross-entropy and the GPU benchmark's code path again on JAX. Slow tests are opt-in: `pytest -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -m "not slow" "$@"
KERAS_BACKEND=jax python -m pytest -m "not slow" tests/layers tests/models tests/generation tests/compression/test_lora.py tests/compression/test_distillation.py tests/compression/test_pruning.py tests/training/test_losses.py tests/benchmarks/test_gpu.py "$@"
