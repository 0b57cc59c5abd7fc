"""
Title: Quickstart: train a GPT and a BERT classifier, generate, export and serve
Description: Offline, on a CPU, in a few minutes: tokenizers trained from text shipped with
tfllm, a small GPT and a small BERT classifier trained with `model.fit`, text generated with
the cached decode loop, both models exported for TF Serving, then loaded the way the server
loads them and asked REST requests.

Run (no network needed):

    python examples/quickstart.py

Writes `saved_models/gpt/<version>/`, `saved_models/sentiment/<version>/` and
`saved_models/models.config` (a new version each run), and `runs/quickstart/metrics.json`.
Serve the result with TF Serving's container (see README, "Serving"):

    docker run -p 8501:8501 -v "$PWD/saved_models:/models" tensorflow/serving \\
        --model_config_file=/models/models.config
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

import keras
import tensorflow as tf

import tfllm
from tfllm.data import causal_lm_dataset, classification_dataset, hold_out_lines, samples
from tfllm.generation import generate_text
from tfllm.tokenizers import BytePairTokenizer, WordPieceTokenizer
from tfllm.training import SparseCrossEntropy, create_optimizer, use_pooled_cpu_allocator, write_metrics

PROMPTS = ["The lighthouse keeper", "One day the fox"]
REVIEWS = ["The little cafe was charming and funny.", "This book was a waste of time and money."]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/quickstart")
    parser.add_argument("--export-dir", default="saved_models", help="TF Serving's model root (base paths inside)")
    parser.add_argument("--gpt-steps", type=int, default=300)
    parser.add_argument("--classifier-epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def train_gpt(args):
    """Byte-level BPE on the stories, then a 2-layer GPT trained on 64-token windows."""
    tokenizer = BytePairTokenizer.train([samples.STORIES], vocabulary_size=512)
    dataset = causal_lm_dataset(
        samples.STORIES, tokenizer, sequence_length=64, batch_size=16, end_of_text_id=tokenizer.end_of_text_id,
        seed=args.seed, cache=True,
    )
    model = tfllm.models.GPT(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=4, hidden_dim=128,
        intermediate_dim=512, max_sequence_length=96, dropout=0.0,
    )
    model.compile(
        optimizer=create_optimizer(3e-3, total_steps=args.gpt_steps, warmup_steps=30, weight_decay=0.01),
        loss=SparseCrossEntropy(),
    )
    history = model.fit(dataset.repeat(), steps_per_epoch=args.gpt_steps // 3, epochs=3, verbose=2)
    return model, tokenizer, history.history["loss"][-1]


def train_classifier(args):
    """WordPiece on the reviews, then a 2-layer BERT classifier; a quarter of them held out."""
    train_path, validation_path = hold_out_lines(samples.REVIEWS, args.output_dir, 0.25, header_lines=1)
    with open(train_path, encoding="utf-8") as file:
        sentences = [line.split("\t")[0] for line in file.read().splitlines()[1:]]
    tokenizer = WordPieceTokenizer.train(sentences, vocabulary_size=300, min_frequency=1)
    train, labels = classification_dataset(train_path, tokenizer, sequence_length=24, batch_size=16, seed=args.seed)
    validation, _ = classification_dataset(
        validation_path, tokenizer, sequence_length=24, batch_size=32, label_vocabulary=labels, shuffle_buffer=0
    )
    backbone = tfllm.models.BERT(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=256, max_sequence_length=24,
    )
    model = tfllm.models.BERTClassifier(backbone, num_classes=len(labels))
    model.compile(
        optimizer=create_optimizer(1e-3, total_steps=args.classifier_epochs * 6, warmup_steps=6),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    model.fit(train, epochs=args.classifier_epochs, verbose=2)
    accuracy = model.evaluate(validation, return_dict=True, verbose=0)["accuracy"]
    return model, tokenizer, labels, accuracy


# The server side: a fresh Python that imports only tensorflow and tensorflow_text (what TF
# Serving links in), loads each exported version and answers REST `:predict` bodies. The
# REST rules come from tfllm/export/rest.py, run as a plain file (it needs only tensorflow).
_SERVE = textwrap.dedent(
    """
    import json, runpy, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    predict = runpy.run_path(sys.argv[1])["predict"]
    answers = []
    for path, body in json.loads(sys.argv[2]):
        answers.append(predict(tf.saved_model.load(path), body))
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("tfllm", "keras_hub"))
    print(json.dumps({"answers": answers, "imported": leaked}))
    """
)


def serve(requests):
    """Answers `[(version path, REST body)]` in a fresh process, as TF Serving would."""
    rest = os.path.join(os.path.dirname(tfllm.__file__), "export", "rest.py")
    result = subprocess.run(
        [sys.executable, "-c", _SERVE, rest, json.dumps(requests)],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    if result.returncode:
        raise RuntimeError(f"Serving the exports failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.output_dir, exist_ok=True)
    start = time.time()

    print("# 1. A GPT trained on the stories shipped with tfllm")
    gpt, bpe, gpt_loss = train_gpt(args)
    greedy = generate_text(gpt, bpe, PROMPTS, max_new_tokens=32, stop_token_ids=[bpe.end_of_text_id])
    sampled = generate_text(gpt, bpe, PROMPTS, max_new_tokens=32, sampler="top_p", top_p=0.9, seed=args.seed)
    for text in greedy + sampled:
        print(repr(text))

    print("# 2. A BERT sentiment classifier trained on the reviews shipped with tfllm")
    classifier, wordpiece, labels, accuracy = train_classifier(args)
    print(f"held-out accuracy: {accuracy:.3f}")

    print(f"# 3. Export for TF Serving under {args.export_dir}/")
    gpt_path = tfllm.export.export_gpt(gpt, bpe, os.path.join(args.export_dir, "gpt"), max_new_tokens=32)
    classifier_path = tfllm.export.export_classifier(
        classifier, wordpiece, labels, os.path.join(args.export_dir, "sentiment"), sequence_length=24
    )
    for path in (gpt_path, classifier_path):
        print(tfllm.export.audit(path))

    print("# 4. Loaded as TF Serving loads them, answering REST requests")
    requests = [
        [gpt_path, {"instances": [{"prompt": prompt} for prompt in PROMPTS]}],
        [gpt_path, {"signature_name": "generate", "inputs": {
            "prompt": PROMPTS, "max_new_tokens": [16, 16], "temperature": [0.8, 0.0], "top_k": [40, 0],
            "top_p": [0.95, 1.0], "seed": [1, 1]}}],
        [classifier_path, {"instances": [{"text": text} for text in REVIEWS]}],
    ]
    served = serve(requests)
    for (path, body), answer in zip(requests, served["answers"]):
        print(f"POST /v1/models/{os.path.basename(os.path.dirname(path))}:predict {json.dumps(body)}")
        print(f"  -> {json.dumps(answer)}")

    metrics = {
        "gpt_train_loss": gpt_loss,
        "gpt_greedy": greedy,
        "classifier_val_accuracy": accuracy,
        "exports": [gpt_path, classifier_path],
        "served": served["answers"],
        "served_without_tfllm": not served["imported"],
        "seconds": time.time() - start,
    }
    write_metrics(args.output_dir, metrics)
    print(f"Done in {metrics['seconds']:.0f} s. Metrics in {args.output_dir}/metrics.json.")
    return metrics


if __name__ == "__main__":
    use_pooled_cpu_allocator()  # before the first tensor; see its docstring
    main()
