"""
Title: Train a GPT from raw text
Description: Byte-level BPE trained on the corpus, a GPT-2-style model, `model.fit` on a
streaming tf.data pipeline, and validation loss in nats per character.

The default corpus is Tiny Shakespeare (downloaded once with `keras.utils.get_file`);
`--data PATH` takes any local UTF-8 text file. The last 10% of the lines are held out for
validation. Run:

    python examples/train_gpt.py --output-dir runs/gpt
    python examples/train_gpt.py --data my_corpus.txt --output-dir runs/mine --max-minutes 5

Writes to `--output-dir`: `tokenizer/` (vocab.json, merges.txt), `model.keras`,
`metrics.json` (`val_loss`, `val_perplexity`, `val_nats_per_char`, ...), `history.csv`
and TensorBoard `logs/`. A run killed midway resumes from its last backup when started
again with the same `--output-dir`. `--export-dir saved_models/gpt` also exports the model
with its tokenizer and generation loop for TF Serving (prompt in, completion out).
"""

import argparse
import math
import os
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

import tfllm
from tfllm.data import causal_lm_dataset, hold_out_lines
from tfllm.tokenizers import BytePairTokenizer
from tfllm.data.public import tiny_shakespeare
from tfllm.training import (
    SparseCrossEntropy,
    TimeLimit,
    create_optimizer,
    default_jit_compile,
    sparse_cross_entropy,
    training_callbacks,
    use_pooled_cpu_allocator,
    write_metrics,
)

END_OF_TEXT = "<|endoftext|>"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a UTF-8 text file (default: download Tiny Shakespeare)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--vocabulary-size", type=int, default=1024)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--intermediate-dim", type=int, default=1024)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps in all")
    parser.add_argument("--steps-per-epoch", type=int, default=100, help="also the backup interval")
    parser.add_argument("--gradient-accumulation", type=int, default=1)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument(
        "--jit", dest="jit_compile", action=argparse.BooleanOptionalAction, default=None,
        help="compile the training step with XLA (default: yes with TensorFlow, except mixed_bfloat16 on a CPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--export-dir", help="also export for TF Serving to this base path (e.g. saved_models/gpt): a new version in it"
    )
    parser.add_argument("--export-max-new-tokens", type=int, default=None, help="the served cap (default: half the context)")
    return parser.parse_args(argv)


def nats_per_character(model, dataset, tokenizer, end_of_text_id):
    """Total validation negative log-likelihood divided by the characters it predicts.

    The end-of-text token is predicted (its loss counts) but is no character.
    """
    total_nll, label_ids = 0.0, []
    for features, labels in dataset:
        logits = model(features, training=False)
        nll = sparse_cross_entropy(labels, logits)
        total_nll += float(keras.ops.sum(nll))
        label_ids.append(labels.numpy().reshape(-1))
    label_ids = np.concatenate(label_ids)
    text = tokenizer.detokenize(label_ids[label_ids != end_of_text_id])
    characters = len(text.numpy().decode("utf-8"))
    return total_nll / characters, len(label_ids), characters


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(args.precision)
    os.makedirs(args.output_dir, exist_ok=True)

    # ## The corpus and its tokenizer
    train_path, validation_path = hold_out_lines(tiny_shakespeare(args.data), args.output_dir, args.validation_fraction)
    tokenizer_dir = os.path.join(args.output_dir, "tokenizer")
    if os.path.exists(os.path.join(tokenizer_dir, "vocab.json")):
        tokenizer = BytePairTokenizer.load(tokenizer_dir)  # a resumed run keeps its vocabulary
    else:
        tokenizer = BytePairTokenizer.train([train_path], args.vocabulary_size, special_tokens=[END_OF_TEXT])
        tokenizer.save(tokenizer_dir)
    end_of_text_id = tokenizer.token_to_id(END_OF_TEXT)

    # ## The data pipeline: tokenize, join documents, cut windows, shuffle, batch
    train = causal_lm_dataset(
        train_path, tokenizer, args.sequence_length, args.batch_size, end_of_text_id, seed=args.seed, cache=True
    )
    validation = causal_lm_dataset(
        validation_path,
        tokenizer,
        args.sequence_length,
        args.batch_size,
        end_of_text_id,
        shuffle_buffer=0,
        cache=True,
        drop_remainder=False,
    )

    # ## The model
    model = tfllm.models.GPT(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim,
        max_sequence_length=args.sequence_length,
        dropout=args.dropout,
    )
    updates = math.ceil(args.steps / args.gradient_accumulation)
    model.compile(
        optimizer=create_optimizer(
            args.learning_rate,
            total_steps=updates,
            weight_decay=args.weight_decay,
            beta_2=0.99,
            gradient_accumulation_steps=args.gradient_accumulation,
        ),
        loss=SparseCrossEntropy(),
        metrics=[keras_hub.metrics.Perplexity(from_logits=True, name="perplexity")],
        jit_compile=default_jit_compile(args.precision) if args.jit_compile is None else args.jit_compile,
    )

    # ## Training
    callbacks = training_callbacks(args.output_dir)
    if args.max_minutes:
        callbacks.append(TimeLimit(args.max_minutes))
    start = time.time()
    history = model.fit(
        train.repeat(),
        steps_per_epoch=args.steps_per_epoch,
        epochs=math.ceil(args.steps / args.steps_per_epoch),
        validation_data=validation,
        validation_freq=5,
        callbacks=callbacks,
        verbose=2,
    )
    training_seconds = time.time() - start

    # ## Evaluation
    results = model.evaluate(validation, return_dict=True, verbose=0)
    nats, tokens, characters = nats_per_character(model, validation, tokenizer, end_of_text_id)
    model.save(os.path.join(args.output_dir, "model.keras"))
    metrics = {
        "val_loss": results["loss"],
        "val_perplexity": results["perplexity"],
        "val_nats_per_char": nats,
        "val_tokens": tokens,
        "val_characters": characters,
        "train_loss": history.history["loss"][-1],
        "steps": int(model.optimizer.iterations.numpy()) * args.gradient_accumulation,
        "training_seconds": training_seconds,
        "parameters": model.count_params(),
        "vocabulary_size": tokenizer.vocabulary_size(),
    }
    if args.export_dir:
        # ## Export for TF Serving: text in, text out
        max_new_tokens = args.export_max_new_tokens or args.sequence_length // 2
        metrics["export_path"] = tfllm.export.export_gpt(model, tokenizer, args.export_dir, max_new_tokens=max_new_tokens)
    write_metrics(args.output_dir, metrics)
    print({key: round(value, 4) if isinstance(value, float) else value for key, value in metrics.items()})
    return metrics


if __name__ == "__main__":
    use_pooled_cpu_allocator()  # before the first tensor; see its docstring
    tf.get_logger().setLevel("ERROR")
    main()
