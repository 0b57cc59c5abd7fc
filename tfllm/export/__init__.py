"""Export for TensorFlow Serving: SavedModels that take raw text and return text or labels.

- `export_gpt`: a GPT model with its tokenizer and the cached decode loop (`serving_default`,
  `generate`, `score`).
- `export_classifier`: a BERT classifier with its tokenizer and packer (`serving_default`,
  `embed`).
- `export_token_classifier`: a BERT token classifier as a named-entity recognizer
  (`serving_default`: raw text -> entities with character offsets, `embed`).
- `export_question_answerer`: a BERT span model as an extractive question answerer
  (`serving_default`: question and context -> answer text with character offsets, `embed`).
- `export_masked_lm`: a BERT pretrainer's masked-LM head, "fill the [MASK]"
  (`serving_default`, `embed`).

Each writes `<base_path>/<version>/` atomically (a hidden temporary directory, renamed when
complete), with TF Serving's warm-up file, after checking it with `audit`; and adds the model
to `models.config` beside the base path. `predict` answers a REST `:predict` body the way the
server does.
"""

import os

from tfllm.export import _shared_files, _versions
from tfllm.export.audit import AuditError, AuditReport, audit
from tfllm.export.bert import ClassifierServer, EntityServer, MaskedLMServer, QuestionAnswerServer
from tfllm.export.gpt import GPTServer
from tfllm.export.rest import predict

__all__ = [
    "AuditError",
    "AuditReport",
    "ClassifierServer",
    "EntityServer",
    "GPTServer",
    "MaskedLMServer",
    "QuestionAnswerServer",
    "audit",
    "export_classifier",
    "export_gpt",
    "export_masked_lm",
    "export_question_answerer",
    "export_token_classifier",
    "predict",
    "read_warmup_requests",
    "update_models_config",
]

existing_versions = _versions.existing_versions
read_warmup_requests = _versions.read_warmup_requests
update_models_config = _shared_files.update_models_config


def export_gpt(
    model,
    tokenizer,
    base_path,
    version=None,
    *,
    max_new_tokens=None,
    default_max_new_tokens=None,
    config=None,
    num_candidates=None,
    models_config=True,
    serving_base_path="/models",
    **options,
):
    """Exports a GPT model, its tokenizer and generation for TF Serving.

    Signatures (every input and output `[batch]`):
        - `serving_default`: `{"prompt": string}` -> `{"completion": string}`, generated as
          `config` says (default: greedy) with `default_max_new_tokens` tokens.
        - `generate`: `{"prompt": string, "max_new_tokens": int32, "temperature": float32,
          "top_k": int32, "top_p": float32, "seed": int32}` -> `{"completion": string}`.
          Per row: a `temperature` that is not a finite number > 0 (zero, negative, NaN,
          ±Infinity) is greedy; `top_k <= 0` and a `top_p` outside (0, 1] (NaN and
          ±Infinity included) turn that filter off; the same seed gives the same completion.
          Every input must have the prompt's batch size: a request whose inputs differ in
          batch size fails with an InvalidArgument error (HTTP 400 from TF Serving), and
          only that request.
        - `score`: `{"text": string}` -> `{"log_likelihood": float32, "num_tokens": int32}`,
          the log-probability of the text's tokens after the end-of-text token.

    Defined behaviour on odd input (nothing crashes the server): `max_new_tokens` above the
    exported `max_new_tokens` is clamped to it, and negative values give an empty
    completion; a prompt longer than the context keeps its most recent `max_sequence_length
    - n` tokens, where `n` is the largest `max_new_tokens` of the batch (texts to score keep
    their last `max_sequence_length` tokens); an empty prompt starts from the end-of-text
    token; any bytes are accepted (invalid UTF-8 becomes U+FFFD) and completions are always
    valid UTF-8; an empty batch gives an empty batch. A completion ends before the first
    stop token (default: end-of-text). Odd `generate` options (out of range, NaN, infinite)
    get the meanings above rather than an error because under server-side batching an
    error fails every request merged into the batch.

    Args:
        model: a `tfllm.models.GPT`, or a causal language model composed from tfllm's layers
            (see `tfllm.generation.GPTDecoder`).
        tokenizer: its `tfllm.tokenizers.BytePairTokenizer` (with an end-of-text token).
        base_path: the model's base path, e.g. `saved_models/gpt`; the model is served
            under this directory's name.
        version: int, or None for the next free version.
        max_new_tokens: the cap on new tokens per request; must leave room for a prompt
            (default: 64, or half the model's maximum sequence length when that is less).
        default_max_new_tokens: new tokens for `serving_default` (default: the cap).
        config: a `tfllm.generation.GenerationConfig` for `serving_default` (a greedy or
            sampling config; `seed` defaults to 0); its `stop_token_ids` (default:
            end-of-text), `repetition_penalty` and `no_repeat_ngram_size` apply to
            `generate` too.
        num_candidates: how many of the most likely tokens `generate` samples among
            (default: the whole vocabulary, so `top_p` is exact).
        **options: instead of `config`, its options (`sampler="top_p", top_p=0.9, ...`).
        models_config: True writes or updates `models.config` beside `base_path`; a path
            names the file; False writes none.
        serving_base_path: where the server sees the base paths' parent (the container's
            `/models`).

    Returns:
        The version directory's path.
    """
    server = GPTServer(
        model,
        tokenizer,
        max_new_tokens=max_new_tokens,
        default_max_new_tokens=default_max_new_tokens,
        config=config,
        num_candidates=num_candidates,
        **options,
    )
    return _export(server, base_path, version, models_config, serving_base_path)


def export_classifier(
    model,
    tokenizer,
    labels,
    base_path,
    version=None,
    *,
    sequence_length,
    text_pair=False,
    normalize_embeddings=False,
    models_config=True,
    serving_base_path="/models",
):
    """Exports a BERT classifier with its tokenizer for TF Serving.

    Signatures (batch first):
        - `serving_default`: `{"text": string}` (plus `"text_pair"` with `text_pair=True`)
          -> `{"probabilities": float32 [batch, classes], "label": string}`.
        - `embed`: `{"text": string}` -> `{"embedding": float32 [batch, hidden_dim]}`, the
          backbone's final hidden states averaged over the real tokens.

    Texts are packed exactly as `tfllm.data.classification_dataset` packs them in training
    (`BERTInputPacker`): `[CLS] text [SEP] (pair [SEP])`, truncated to `sequence_length`.
    Empty texts and any bytes are valid input.

    Args:
        model: a `tfllm.models.BERTClassifier`.
        tokenizer: its `tfllm.tokenizers.WordPieceTokenizer`.
        labels: the class names, index = class id.
        base_path, version, models_config, serving_base_path: as in `export_gpt`.
        sequence_length: the packed length used in training.
        text_pair: whether the model was trained on text pairs.
        normalize_embeddings: L2-normalize `embed`'s output.

    Returns:
        The version directory's path.
    """
    server = ClassifierServer(model, tokenizer, labels, sequence_length, text_pair, normalize_embeddings)
    return _export(server, base_path, version, models_config, serving_base_path)


def export_token_classifier(
    model,
    tokenizer,
    labels,
    base_path,
    version=None,
    *,
    sequence_length,
    stride=None,
    normalize_embeddings=False,
    models_config=True,
    serving_base_path="/models",
):
    """Exports a BERT token classifier with its tokenizer as a named-entity recognizer.

    Signatures (batch first):
        - `serving_default`: `{"text": string}` -> `{"entity_texts": string, "entity_types":
          string, "entity_starts": int32, "entity_ends": int32, "entity_scores": float32}`,
          each `[batch, max_entities]` (the most entities of any text in the batch), padded
          with "" and -1. Offsets count Unicode characters of the input text, end exclusive
          (invalid UTF-8 counts as one U+FFFD per invalid sequence). Entities follow the IOB2
          rules of `tfllm.inference.EntityRecognizer`.
        - `embed`: as in `export_classifier`.

    A text of any length is read whole, in windows of `sequence_length` tokens `stride` pieces
    apart. Empty texts give no entities; an empty batch gives `[0, 0]` outputs.

    Args:
        model: a `tfllm.models.BERTTokenClassifier`.
        tokenizer: its `tfllm.tokenizers.WordPieceTokenizer`.
        labels: the IOB2 tag of each class, index = class id.
        sequence_length: the longest input the model reads (the training length).
        stride: the step between windows, in pieces (default: half a window).
        base_path, version, models_config, serving_base_path: as in `export_gpt`.

    Returns:
        The version directory's path.
    """
    server = EntityServer(model, tokenizer, labels, sequence_length, stride, normalize_embeddings)
    return _export(server, base_path, version, models_config, serving_base_path)


def export_question_answerer(
    model,
    tokenizer,
    base_path,
    version=None,
    *,
    sequence_length,
    stride=None,
    max_question_length=None,
    max_answer_length=30,
    normalize_embeddings=False,
    models_config=True,
    serving_base_path="/models",
):
    """Exports a BERT span model with its tokenizer as an extractive question answerer.

    Signatures (batch first):
        - `serving_default`: `{"question": string, "context": string}` -> `{"answer": string,
          "answer_start": int32, "answer_end": int32, "score": float32}`, each `[batch]`. The
          answer is a slice of the context as written; the offsets count its Unicode
          characters, end exclusive (invalid UTF-8 counts as one U+FFFD per invalid sequence);
          `score` is the answer's probability within its window. An empty context gives
          `""`, -1, -1, -1; a request whose two inputs differ in batch size fails with an
          InvalidArgument error (HTTP 400 from TF Serving).
        - `embed`: as in `export_classifier`.

    A context of any length is read whole, in windows `stride` pieces apart; the question
    keeps its first `max_question_length` pieces (see `tfllm.inference.QuestionAnswerer`).

    Args:
        model: a `tfllm.models.BERTQuestionAnswerer`.
        tokenizer: its `tfllm.tokenizers.WordPieceTokenizer`.
        sequence_length: the longest input the model reads (the training length).
        stride, max_question_length, max_answer_length: as in `QuestionAnswerer`.
        base_path, version, models_config, serving_base_path: as in `export_gpt`.

    Returns:
        The version directory's path.
    """
    server = QuestionAnswerServer(
        model, tokenizer, sequence_length, stride, max_question_length, max_answer_length, normalize_embeddings
    )
    return _export(server, base_path, version, models_config, serving_base_path)


def export_masked_lm(
    pretrainer,
    tokenizer,
    base_path,
    version=None,
    *,
    sequence_length,
    top_k=5,
    max_masks=8,
    normalize_embeddings=False,
    models_config=True,
    serving_base_path="/models",
):
    """Exports a BERT pretrainer's masked-LM head ("fill the [MASK]") for TF Serving.

    Signatures (batch first):
        - `serving_default`: `{"text": string}` -> `{"filled": string, "predictions":
          string [batch, max_masks, top_k], "scores": float32 [batch, max_masks, top_k]}`
          (see `MaskedLMServer`).
        - `embed`: as in `export_classifier`.

    Args:
        pretrainer: a `tfllm.models.BERTPretrainer`.
        tokenizer: its `tfllm.tokenizers.WordPieceTokenizer`.
        sequence_length: the packed length (texts are truncated to it).
        top_k: candidates per mask, at most the vocabulary size.
        max_masks: masks per text that get candidates.
        base_path, version, models_config, serving_base_path: as in `export_gpt`.

    Returns:
        The version directory's path.
    """
    server = MaskedLMServer(pretrainer, tokenizer, sequence_length, top_k, max_masks, normalize_embeddings)
    return _export(server, base_path, version, models_config, serving_base_path)


def _export(server, base_path, version, models_config, serving_base_path):
    base_path = os.path.abspath(base_path)
    name = os.path.basename(base_path)
    path = _versions.save_version(
        server,
        base_path,
        server.signatures(),
        version=version,
        warmup_requests=server.warmup_requests(),
        model_name=name,
        check=audit,
    )
    if models_config:
        config_path = models_config if isinstance(models_config, (str, os.PathLike)) else None
        config_path = config_path or os.path.join(os.path.dirname(base_path), "models.config")
        update_models_config(config_path, name, f"{serving_base_path.rstrip('/')}/{name}")
    return path
