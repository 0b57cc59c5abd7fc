"""Serving speed: the exported SavedModels against the same models called in-process.

- GPT: the exported `generate` signature (text in, text out, plain graph, no XLA: what TF
  Serving runs) against in-process `tfllm.generation.generate` compiled with XLA on token ids,
  same weights, same prompt tokens, greedy, no stop token (so both produce every token).
  Latency per request at batch 1 and 8.
- BERT classifier: the exported `serving_default` (raw text in, packing included) against the
  Keras model's `predict_on_batch` on already packed token ids. Sentences per second.

Both sides run alternately in one process after a warm-up; medians of the per-repeat ratios.

    python -m benchmarks.export                  # writes benchmarks/results/export.{json,md}
    python -m benchmarks.export --repeats 9
"""

import argparse
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfllm  # noqa: E402
from tfllm.data import BERTInputPacker  # noqa: E402
from benchmarks import reporting  # noqa: E402
from tfllm.data.public import sst2, tiny_shakespeare  # noqa: E402
from tfllm.generation import generate  # noqa: E402
from tfllm.tokenizers import BytePairTokenizer, WordPieceTokenizer  # noqa: E402

DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "results", "export")
GPT_CONFIG = dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024, max_sequence_length=256, dropout=0.0)
BERT_CONFIG = dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024, max_sequence_length=64)


def alternate(methods, repeats):
    """Times each method `repeats` times, rotating the order; returns `{name: [seconds]}`."""
    names = list(methods)
    times = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            start = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - start)
    return times


def exported_gpt(directory, new_tokens, corpus=None):
    """The benchmark GPT (a byte-level BPE of 8192 trained on Tiny Shakespeare) and its export.

    Returns:
        `(text, tokenizer, model, generate)`: the corpus, the tokenizer, the Keras model and
        the loaded export's `generate` signature (capped at `new_tokens`).
    """
    with open(tiny_shakespeare(corpus), encoding="utf-8") as file:
        text = file.read()
    tokenizer = BytePairTokenizer.train([text], vocabulary_size=8192)
    model = tfllm.models.GPT(vocabulary_size=tokenizer.vocabulary_size(), **GPT_CONFIG)
    path = tfllm.export.export_gpt(
        model, tokenizer, os.path.join(directory, "gpt"), max_new_tokens=new_tokens, stop_token_ids=[], models_config=False
    )
    return text, tokenizer, model, tf.saved_model.load(path).signatures["generate"]


def greedy_inputs(prompts, new_tokens):
    """The `generate` signature's inputs for greedy completions of `new_tokens` tokens."""
    rows = len(prompts)
    return dict(
        prompt=tf.constant(prompts),
        max_new_tokens=tf.fill([rows], new_tokens),
        temperature=tf.zeros([rows]),
        top_k=tf.zeros([rows], tf.int32),
        top_p=tf.ones([rows]),
        seed=tf.zeros([rows], tf.int32),
    )


def gpt_case(directory, repeats, batch_sizes, prompt_length=16, new_tokens=128, corpus=None):
    text, tokenizer, model, served = exported_gpt(directory, new_tokens, corpus)
    # Prompts of exactly `prompt_length` tokens, given to the export as text.
    ids = tokenizer([text[i * 1000 : i * 1000 + 300] for i in range(8)]).to_list()
    prompts_ids = [row[:prompt_length] for row in ids]
    prompt_texts = [tokenizer.detokenize([row]).numpy()[0] for row in prompts_ids]
    rows = []
    for batch_size in batch_sizes:
        prompts = np.array(prompts_ids[:batch_size], "int32")
        inputs = greedy_inputs(prompt_texts[:batch_size], new_tokens)
        methods = {
            "in-process generate (XLA, token ids)": lambda: generate(model, prompts, new_tokens, jit_compile=True),
            "exported generate signature (no XLA, text)": lambda: served(**inputs)["completion"].numpy(),
        }
        # Warm-up, and the check that both give the same greedy tokens.
        local = np.asarray(methods["in-process generate (XLA, token ids)"]())[:, prompt_length:]
        exported = [tokenizer([completion]).to_list()[0] for completion in methods["exported generate signature (no XLA, text)"]()]
        expected = [tokenizer([tokenizer.detokenize([row]).numpy()[0]]).to_list()[0] for row in local]
        if exported != expected:
            raise RuntimeError("The exported greedy completions differ from in-process generate.")
        times = alternate(methods, repeats)
        baseline = times["in-process generate (XLA, token ids)"]
        for name, seconds in times.items():
            ratios = [s / b for s, b in zip(seconds, baseline)]
            rows.append(
                dict(case="gpt", batch_size=batch_size, method=name, median_ms=1000 * statistics.median(seconds),
                     latency_ratio=statistics.median(ratios), seconds=seconds)
            )
            print(f"GPT batch {batch_size}: {name:<45} {rows[-1]['median_ms']:8.1f} ms  x{rows[-1]['latency_ratio']:.2f}", flush=True)
    return rows


def classifier_case(directory, repeats, batch_size=64, sequence_length=64, sentences_path=None):
    with open(sst2("dev", sentences_path), encoding="utf-8") as file:
        sentences = [line.split("\t")[0] for line in file.read().splitlines()[1:]]
    tokenizer = WordPieceTokenizer.train(sentences, vocabulary_size=8192)
    model = tfllm.models.BERTClassifier(
        tfllm.models.BERT(vocabulary_size=tokenizer.vocabulary_size(), **BERT_CONFIG), num_classes=2
    )
    path = tfllm.export.export_classifier(
        model, tokenizer, ["negative", "positive"], os.path.join(directory, "classifier"),
        sequence_length=sequence_length, models_config=False,
    )
    served = tf.saved_model.load(path).signatures["serving_default"]
    texts = tf.constant(sentences[:batch_size])
    features = {key: value.numpy() for key, value in BERTInputPacker(tokenizer, sequence_length)(texts).items()}
    methods = {
        "Keras model, packed token ids": lambda: model.predict_on_batch(features),
        "exported serving_default, raw text": lambda: served(text=texts)["probabilities"].numpy(),
    }
    np.testing.assert_allclose(
        tf.nn.softmax(methods["Keras model, packed token ids"]()).numpy(), methods["exported serving_default, raw text"](), atol=1e-5
    )
    times = alternate(methods, repeats)
    baseline = times["Keras model, packed token ids"]
    rows = []
    for name, seconds in times.items():
        rows.append(
            dict(case="classifier", batch_size=batch_size, method=name,
                 sentences_per_second=batch_size / statistics.median(seconds),
                 throughput_ratio=statistics.median([b / s for s, b in zip(seconds, baseline)]), seconds=seconds)
        )
        print(f"classifier batch {batch_size}: {name:<40} {rows[-1]['sentences_per_second']:8.0f} sentences/s  x{rows[-1]['throughput_ratio']:.2f}", flush=True)
    return rows


def markdown(rows, settings):
    lines = [
        f"Measured with `{settings['command']}` ({settings['machine']}); medians of {settings['repeats']} "
        "alternating runs, ratios taken per run.",
        "",
        "| case | batch | method | median | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for row in rows:
        if row["case"] == "gpt":
            lines.append(f"| GPT, 16-token prompt + 128 new, greedy | {row['batch_size']} | {row['method']} | "
                         f"{row['median_ms']:.0f} ms | {row['latency_ratio']:.2f}x latency |")
        else:
            lines.append(f"| BERT classifier, SST-2 sentences | {row['batch_size']} | {row['method']} | "
                         f"{row['sentences_per_second']:,.0f} sentences/s | {row['throughput_ratio']:.2f}x throughput |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="path without extension: writes .json and .md")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--shakespeare", help="a local copy of Tiny Shakespeare (default: download it once)")
    parser.add_argument("--sst2-dev", help="a local copy of SST-2's dev.tsv (default: download SST-2 once)")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as directory:
        rows = gpt_case(directory, args.repeats, args.batch_sizes, corpus=args.shakespeare)
        rows += classifier_case(directory, args.repeats, sentences_path=args.sst2_dev)
    settings = dict(
        repeats=args.repeats,
        command=reporting.command("python -m benchmarks.export", argv),
        machine=f"{platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras {keras.__version__}",
    )
    table = markdown(rows, settings)
    reporting.write(args.output, dict(settings=settings, results=rows), table)
    print(table)


if __name__ == "__main__":
    main()
