"""tfllm's example scripts, each runnable on its own (`python examples/train_gpt.py --help`) and
installed as `tfllm.examples`, whose programs the `tfllm` command runs."""
