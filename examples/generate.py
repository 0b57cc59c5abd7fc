"""
Title: Generate text with a trained GPT
Description: Load the model and tokenizer written by `examples/train_gpt.py` and continue
prompts with greedy decoding, sampling (temperature, top-k, top-p) or beam search.

Generation runs a KV-cached decode loop compiled with XLA (`--no-jit` runs the same loop as a
plain TensorFlow graph, the way a TF Serving export does). A row stops at the end-of-text
token. Run:

    python examples/train_gpt.py --output-dir runs/gpt
    python examples/generate.py --model-dir runs/gpt --prompt "ROMEO:" --prompt "First Citizen:"
    python examples/generate.py --model-dir runs/gpt --prompt "ROMEO:" --sampler top_p \\
        --top-p 0.9 --temperature 0.8 --num-return-sequences 3 --seed 1
    python examples/generate.py --model-dir runs/gpt --prompt "ROMEO:" --sampler beam --num-beams 4 \\
        --no-repeat-ngram-size 3 --output runs/gpt/generations.json

Prints every completion. `--output FILE` also writes them to a JSON file, with the settings
and the speed in new tokens per second. `--export-dir saved_models/gpt` also exports the model,
its tokenizer and the decode loop for TF Serving, with `--max-new-tokens` as the served cap.
"""

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import tfllm
from tfllm.generation import SAMPLERS, generate
from tfllm.tokenizers import BytePairTokenizer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="the --output-dir of examples/train_gpt.py")
    parser.add_argument(
        "--prompt", action="append", dest="prompts", help="a prompt; repeat the flag for a batch (default: 'ROMEO:')"
    )
    parser.add_argument("--sampler", choices=SAMPLERS, default="greedy")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    # Sampling and beam options default to None: `generate` then uses its own defaults and
    # rejects an option the chosen sampler does not use.
    parser.add_argument("--temperature", type=float, help="sampling: > 0 (default 1)")
    parser.add_argument("--top-k", type=int, help="sampling: draw among the k most likely tokens")
    parser.add_argument("--top-p", type=float, help="sampling: nucleus probability in (0, 1]")
    parser.add_argument("--num-beams", type=int, help="beam search: hypotheses per prompt (default 4)")
    parser.add_argument("--num-return-sequences", type=int, default=1, help="completions per prompt")
    parser.add_argument("--repetition-penalty", type=float, help="> 1 discourages tokens already present")
    parser.add_argument("--no-repeat-ngram-size", type=int, help="never repeat an n-gram of this size")
    parser.add_argument("--seed", type=int, help="sampling: the same seed gives the same completions")
    parser.add_argument("--no-jit", dest="jit_compile", action="store_false", help="run without XLA")
    parser.add_argument(
        "--repeats", type=int, default=1, help="generate this many times; speed is the median after the first call"
    )
    parser.add_argument("--output", help="write prompts, completions, settings and speed to this JSON file")
    parser.add_argument(
        "--export-dir",
        help="also export the model for TF Serving to this base path (e.g. saved_models/gpt), capped at --max-new-tokens",
    )
    return parser.parse_args(argv)


def sampler_options(args):
    """The `generate` options the user set on the command line."""
    names = ("temperature", "top_k", "top_p", "num_beams", "repetition_penalty", "no_repeat_ngram_size", "seed")
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.num_return_sequences != 1:
        options["num_return_sequences"] = args.num_return_sequences
    return options


def main(argv=None):
    args = parse_args(argv)
    prompts = args.prompts or ["ROMEO:"]
    if args.repeats < 1:
        raise ValueError(f"`--repeats` must be >= 1. Received: {args.repeats}")

    # ## The trained model and its tokenizer
    model = keras.saving.load_model(os.path.join(args.model_dir, "model.keras"))
    tokenizer = BytePairTokenizer.load(os.path.join(args.model_dir, "tokenizer"))
    end_of_text_id = tokenizer.end_of_text_id

    # ## Generation
    # The prompts as lists of ids; `generate` right-pads them into one batch and gives each
    # row the continuation it would get alone.
    token_ids = tokenizer(prompts).to_list()
    options = sampler_options(args)
    if end_of_text_id is not None:
        options["stop_token_ids"] = end_of_text_id
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        output = generate(
            model, token_ids, args.max_new_tokens, args.sampler, jit_compile=args.jit_compile, **options
        )
        seconds.append(time.perf_counter() - start)

    # ## Back to text
    # `output` holds `num_return_sequences` adjacent rows per prompt: the prompt, its
    # continuation up to and including the end-of-text token, then padding.
    copies = output.shape[0] // len(prompts)
    completions, new_tokens = [], 0
    for row, ids in enumerate(output):
        prompt_ids = token_ids[row // copies]
        continuation = ids[len(prompt_ids) : len(prompt_ids) + args.max_new_tokens].tolist()
        if end_of_text_id in continuation:
            continuation = continuation[: continuation.index(end_of_text_id) + 1]
        new_tokens += len(continuation)
        text = tokenizer.detokenize(np.array(prompt_ids + continuation, "int32")).numpy().decode("utf-8")
        completions.append({"prompt": prompts[row // copies], "text": text, "new_tokens": len(continuation)})

    for index, completion in enumerate(completions):
        print(f"--- {index}: {completion['prompt']!r} ({completion['new_tokens']} new tokens)")
        print(completion["text"])
    # The first call includes tracing and compiling the decode loop.
    later = statistics.median(seconds[1:]) if len(seconds) > 1 else None
    results = {
        "completions": completions,
        "settings": {"sampler": args.sampler, "max_new_tokens": args.max_new_tokens, "jit_compile": args.jit_compile,
                     **{key: value for key, value in options.items() if key != "stop_token_ids"}},
        "new_tokens": new_tokens,
        "first_call_seconds": seconds[0],
        "seconds": later,
        "new_tokens_per_second": new_tokens / later if later else None,
    }
    if later:
        print(f"{new_tokens} new tokens in {later:.3f} s: {new_tokens / later:,.0f} new tokens/s")
    if args.export_dir:
        results["export_path"] = tfllm.export.export_gpt(
            model, tokenizer, args.export_dir, max_new_tokens=args.max_new_tokens
        )
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2, ensure_ascii=False)
    return results


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    main()
