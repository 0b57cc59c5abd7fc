"""Text generation with tfllm GPT models: a KV cache, samplers, and one compiled decode loop.

- `generate(model, token_ids, max_new_tokens, sampler="greedy", **options)`: token ids in,
  token ids out (greedy, sampling with temperature / top-k / top-p, beam search, repetition
  penalty, no-repeat n-grams, stop tokens, seeds, several sequences per prompt).
- `generate_text(model, tokenizer, prompts, max_new_tokens, ...)`: strings in, strings out.
- `decode(...)`: the traceable loop itself, for embedding in another graph (serving).
"""

from tfllm.generation.decoding import GPTDecoder, decode
from tfllm.generation.generate import SAMPLERS, generate, generate_text

__all__ = ["SAMPLERS", "GPTDecoder", "decode", "generate", "generate_text"]
