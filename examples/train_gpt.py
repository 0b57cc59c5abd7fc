"""
Title: Train a GPT from raw text
Description: Byte-level BPE trained on the corpus, a GPT-2-style model, `model.fit` on a
streaming tf.data pipeline, and validation loss in nats per character.

The default corpus is Tiny Shakespeare (downloaded once with `keras.utils.get_file`);
`--data PATH` takes any local UTF-8 text file. The last 10% of the lines are held out for
validation unless `--validation-data` names another file. Run:

    python examples/train_gpt.py --output-dir runs/gpt
    python examples/train_gpt.py --data my_corpus.txt --output-dir runs/mine --max-minutes 5
    python examples/train_gpt.py --strategy mirrored --batch-size 64 --output-dir runs/gpus
    KERAS_BACKEND=jax python examples/train_gpt.py --distribution model --output-dir runs/sharded

`--strategy mirrored` trains on every local GPU, `--strategy multi-worker` on several machines
(TF_CONFIG); on JAX, `--distribution data` replicates the model on every device and
`--distribution model` shards its weights across them (docs/distributed.md). `--batch-size` is
then the global batch.

Writes to `--output-dir`: `tokenizer/` (vocab.json, merges.txt), `model.keras`,
`metrics.json` (`val_loss`, `val_perplexity`, `val_nats_per_char`, ...), `history.csv`
and TensorBoard `logs/`. A run killed midway resumes from its last backup when started
again with the same `--output-dir`. `--export-dir saved_models/gpt` also exports the model
with its tokenizer and generation loop for TF Serving (prompt in, completion out).
"""

import math
import os

import keras
import keras_hub
import numpy as np

import tfllm
from tfllm.data import causal_lm_dataset, hold_out_lines
from tfllm.data.public import tiny_shakespeare
from tfllm.tokenizers import BytePairTokenizer
from tfllm.training import SparseCrossEntropy, create_optimizer, distribute, harness, sparse_cross_entropy

END_OF_TEXT = "<|endoftext|>"


def parse_args(argv=None):
    parser = harness.script_parser(
        __doc__,
        data_help="a UTF-8 text file (default: download Tiny Shakespeare)",
        validation_help="a UTF-8 text file to validate on (default: the last --validation-fraction of --data)",
        export_help="also export for TF Serving to this base path (e.g. saved_models/gpt): a new version in it",
    )
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
    parser.add_argument("--export-max-new-tokens", type=int, default=None, help="the served cap (default: half the context)")
    harness.add_distribution_flags(parser)
    harness.add_compression_flags(parser, lora=False)
    harness.add_distillation_flags(parser)
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
    harness.start(args)

    # ## The corpus and its tokenizer
    corpus = tiny_shakespeare(args.data)
    if args.validation_data:
        train_path, validation_path = corpus, args.validation_data
    else:
        train_path, validation_path = hold_out_lines(corpus, args.output_dir, args.validation_fraction)
    tokenizer_dir = os.path.join(args.output_dir, "tokenizer")
    teacher = harness.teacher(args)
    if teacher is not None:
        tokenizer = teacher.tokenizer  # a student reads its teacher's token ids
        tokenizer.save(tokenizer_dir)
    elif os.path.exists(os.path.join(tokenizer_dir, "vocab.json")):
        tokenizer = BytePairTokenizer.load(tokenizer_dir)  # a resumed run keeps its vocabulary
    else:
        tokenizer = BytePairTokenizer.train(
            [train_path], args.vocabulary_size, special_tokens=[END_OF_TEXT], show_progress=True
        )
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

    # ## The model: new, or with --distill-from and --student-layers, blocks of the teacher;
    # built and compiled under the --strategy, whose replicas then share each batch, or laid
    # out by the --distribution
    distribute.check_shardable(
        keras.distribution.distribution(),
        vocabulary_size=tokenizer.vocabulary_size(),
        hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim,
    )
    with harness.strategy_scope(args):
        model = harness.student_from_teacher(args) or tfllm.models.GPT(
            vocabulary_size=tokenizer.vocabulary_size(),
            num_layers=args.num_layers,
            num_heads=args.num_heads,
            hidden_dim=args.hidden_dim,
            intermediate_dim=args.intermediate_dim,
            max_sequence_length=args.sequence_length,
            dropout=args.dropout,
        )
        model = harness.distill(model, args)
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
            jit_compile=harness.jit_compile(args),
        )

    # ## Training
    history, training_seconds = harness.fit(
        model,
        train.repeat(),
        args,
        steps_per_epoch=args.steps_per_epoch,
        epochs=math.ceil(args.steps / args.steps_per_epoch),
        validation_data=validation,
        validation_freq=5,
    )

    steps = int(model.optimizer.iterations.numpy()) * args.gradient_accumulation
    model, compression_metrics = harness.compress(model, args)

    # ## Evaluation
    results = distribute.evaluate(model, validation, return_dict=True, verbose=0)
    nats, tokens, characters = nats_per_character(model, validation, tokenizer, end_of_text_id)
    model.save(os.path.join(args.output_dir, "model.keras"))
    metrics = {
        "val_loss": results["loss"],
        "val_perplexity": results["perplexity"],
        "val_nats_per_char": nats,
        "val_tokens": tokens,
        "val_characters": characters,
        "train_loss": history.history["loss"][-1],
        "steps": steps,
        "training_seconds": training_seconds,
        "parameters": model.count_params(),
        **compression_metrics,
        "vocabulary_size": tokenizer.vocabulary_size(),
    }

    # ## Export for TF Serving: text in, text out
    def export(path):
        max_new_tokens = args.export_max_new_tokens or args.sequence_length // 2
        return tfllm.export.export_gpt(model, tokenizer, path, max_new_tokens=max_new_tokens)

    return harness.finish(args, metrics, export)


if __name__ == "__main__":
    harness.run(main)
