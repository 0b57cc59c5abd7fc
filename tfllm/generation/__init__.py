"""Text generation with tfllm GPT models: a KV cache, samplers, and one compiled decode loop.

- `generate(model, token_ids, max_new_tokens, sampler="greedy", **options)`: token ids in,
  token ids out (greedy, sampling with temperature / top-k / top-p, beam search, repetition
  penalty, no-repeat n-grams, stop tokens, seeds, several sequences per prompt).
- `generate_text(model, tokenizer, prompts, max_new_tokens, ...)`: strings in, strings out.
- `stream(model, prompt_ids, ...)` / `stream_text(model, tokenizer, prompt, ...)`: one prompt's
  continuation, token by token (or text piece by piece) as it is chosen.
- `GenerationConfig`: those options as one object, checked once, for `generate`, `decode`
  and the GPT export.
- `decode(...)`: the traceable loop itself, for embedding in another graph (serving).
- `GPTDecoder`: runs a causal language model a chunk of tokens at a time with its blocks'
  KV caches; any Functional model composed from tfllm's layers, `tfllm.models.GPT` included.
"""

from tfllm.generation.config import SAMPLERS, GenerationConfig
from tfllm.generation.decoding import GPTDecoder, decode
from tfllm.generation.generate import generate, generate_text, stream, stream_text

__all__ = [
    "SAMPLERS",
    "GPTDecoder",
    "GenerationConfig",
    "decode",
    "generate",
    "generate_text",
    "stream",
    "stream_text",
]
