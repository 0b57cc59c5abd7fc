"""`python -m benchmarks`: see `benchmarks.run`."""

from benchmarks.run import main
from tfllm.training import use_pooled_cpu_allocator

# Both libraries train in this process, so they share TensorFlow's CPU allocator: the pooled
# one unless TF_CPU_ALLOCATOR_USE_BFC=false is set (the results say which).
use_pooled_cpu_allocator()
main()
