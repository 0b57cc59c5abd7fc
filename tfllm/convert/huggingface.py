"""Hugging Face GPT-2 and BERT directories to tfllm models and tokenizers, and back."""

import json
import os
import re
import warnings

import keras
import numpy as np

from tfllm.convert._checkpoint import open_checkpoint, write_safetensors
from tfllm.models import BERT, GPT

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
SUPPORTED_MODEL_TYPES = ("gpt2", "bert")

# The defaults `transformers` gives to keys a config.json leaves out (`GPT2Config`, `BertConfig`).
_GPT2_DEFAULTS = dict(
    vocab_size=50257,
    n_positions=1024,
    n_embd=768,
    n_layer=12,
    n_head=12,
    n_inner=None,
    activation_function="gelu_new",
    resid_pdrop=0.1,
    layer_norm_epsilon=1e-5,
    tie_word_embeddings=True,
    scale_attn_weights=True,
    scale_attn_by_inverse_layer_idx=False,
    add_cross_attention=False,
)
_BERT_DEFAULTS = dict(
    vocab_size=30522,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    position_embedding_type="absolute",
    is_decoder=False,
    add_cross_attention=False,
)
# Activations that equal the one tfllm's block uses (GPT-2: the tanh approximation of GELU;
# BERT: the exact GELU). `gelu_pytorch_tanh` is the same formula as `gelu_new`.
_GPT2_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")
_BERT_ACTIVATIONS = ("gelu",)


# ---------------------------------------------------------------------------------------------
# The weight layouts: which Hugging Face tensors make each tfllm variable.
# ---------------------------------------------------------------------------------------------


class _Copy:
    """Same layout in both libraries (embeddings, norms, biases, GPT-2's Conv1D kernels)."""

    @staticmethod
    def to_keras(arrays):
        return arrays[0]

    @staticmethod
    def to_hf(array):
        return [array]


class _Transpose:
    """`torch.nn.Linear` keeps `(out, in)` weights; a Keras `Dense` kernel is `(in, out)`."""

    @staticmethod
    def to_keras(arrays):
        return arrays[0].T

    @staticmethod
    def to_hf(array):
        return [array.T]


class _FuseKernels:
    """BERT's separate query, key and value `Linear` weights <-> tfllm's fused `qkv_dense` kernel.

    The fused kernel's columns are `[query | key | value]`, each head-major, as in GPT-2's
    `c_attn`; a `Linear`'s output rows are head-major too, so the fusion is a concatenation.
    """

    @staticmethod
    def to_keras(arrays):
        return np.concatenate([array.T for array in arrays], axis=1)

    @staticmethod
    def to_hf(array):
        return [part.T for part in np.split(array, 3, axis=1)]


class _FuseBiases:
    """BERT's separate query, key and value biases <-> the fused `qkv_dense` bias."""

    @staticmethod
    def to_keras(arrays):
        return np.concatenate(arrays)

    @staticmethod
    def to_hf(array):
        return np.split(array, 3)


def _dense(layer, name, kernel=_Transpose):
    return [(layer.kernel, [f"{name}.weight"], kernel), (layer.bias, [f"{name}.bias"], _Copy)]


def _norm(layer, name):
    return [(layer.gamma, [f"{name}.weight"], _Copy), (layer.beta, [f"{name}.bias"], _Copy)]


def _gpt2_layout(model):
    """`[(variable, [Hugging Face names], transform)]` for a tfllm GPT (names without prefix)."""
    layout = [
        (model.token_embedding.embeddings, ["wte.weight"], _Copy),
        (model.position_embedding.embeddings, ["wpe.weight"], _Copy),
    ]
    for i, block in enumerate(model.transformer_blocks):
        prefix = f"h.{i}"
        # GPT-2's Conv1D stores `(in, out)` kernels, the Keras layout.
        layout += _norm(block.attention_layer_norm, f"{prefix}.ln_1")
        layout += _dense(block.qkv_dense, f"{prefix}.attn.c_attn", kernel=_Copy)
        layout += _dense(block.attention_output_dense, f"{prefix}.attn.c_proj", kernel=_Copy)
        layout += _norm(block.feedforward_layer_norm, f"{prefix}.ln_2")
        layout += _dense(block.feedforward_intermediate_dense, f"{prefix}.mlp.c_fc", kernel=_Copy)
        layout += _dense(block.feedforward_output_dense, f"{prefix}.mlp.c_proj", kernel=_Copy)
    layout += _norm(model.final_layer_norm, "ln_f")
    return layout


def _bert_layout(model):
    """`[(variable, [Hugging Face names], transform)]` for a tfllm BERT (names without prefix)."""
    layout = [
        (model.token_embedding.embeddings, ["embeddings.word_embeddings.weight"], _Copy),
        (model.position_embedding.embeddings, ["embeddings.position_embeddings.weight"], _Copy),
        (model.segment_embedding.embeddings, ["embeddings.token_type_embeddings.weight"], _Copy),
    ]
    layout += _norm(model.embeddings_layer_norm, "embeddings.LayerNorm")
    for i, block in enumerate(model.transformer_blocks):
        prefix = f"encoder.layer.{i}"
        attention = f"{prefix}.attention.self"
        layout += [
            (block.qkv_dense.kernel, [f"{attention}.{part}.weight" for part in ("query", "key", "value")], _FuseKernels),
            (block.qkv_dense.bias, [f"{attention}.{part}.bias" for part in ("query", "key", "value")], _FuseBiases),
        ]
        # Post-norm: the "attention" norm follows the attention's residual sum, as in BERT.
        layout += _dense(block.attention_output_dense, f"{prefix}.attention.output.dense")
        layout += _norm(block.attention_layer_norm, f"{prefix}.attention.output.LayerNorm")
        layout += _dense(block.feedforward_intermediate_dense, f"{prefix}.intermediate.dense")
        layout += _dense(block.feedforward_output_dense, f"{prefix}.output.dense")
        layout += _norm(block.feedforward_layer_norm, f"{prefix}.output.LayerNorm")
    layout += _dense(model.pooler_dense, "pooler.dense")
    return layout


def _hf_shapes(variable, transform):
    """The shapes of the Hugging Face tensors that make `variable` (no memory is allocated)."""
    placeholder = np.broadcast_to(np.zeros((), np.float32), tuple(variable.shape))
    return [tuple(part.shape) for part in transform.to_hf(placeholder)]


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------


def from_huggingface(directory, allow_pickle=False, dtype=None):
    """Reads a local Hugging Face GPT-2 or BERT directory into a tfllm model and tokenizer.

    The directory is what `transformers`' `save_pretrained` writes (or a Hub snapshot):
    `config.json`, the weights in `model.safetensors` (or safetensors shards with
    `model.safetensors.index.json`), and the tokenizer's vocabulary: GPT-2's `vocab.json` and
    `merges.txt`, or BERT's `vocab.txt` (with `do_lower_case` and `strip_accents` from
    `tokenizer_config.json`). Nothing is downloaded.

    `model_type` `"gpt2"` gives a `tfllm.models.GPT` (from `GPT2Model` or `GPT2LMHeadModel`
    weights; the language-model head is the tied token embedding). `"bert"` gives a
    `tfllm.models.BERT` with its pooler (from `BertModel`, or the `bert.` part of a task or
    pretraining model; task heads are not read). Either way the model computes what
    `transformers` computes, to float32 rounding.

    Everything is checked before any weight is set: an unreadable or unsupported config, sizes
    in config.json that are not the checkpoint's (checked against the safetensors header
    before the model is built), a missing tensor or one of the wrong shape (all are listed,
    with expected and found shapes), an unreadable or truncated weights file (named) and a
    vocabulary whose size differs from the embedding's raise an error, and no model is
    returned half-loaded.

    Args:
        directory: path of the Hugging Face model directory.
        allow_pickle: bool. Read a pickled `pytorch_model.bin` when the directory has no
            safetensors file. Off by default because unpickling can run code stored in the
            file; only turn it on for files you trust. Needs PyTorch (`tfllm[pytorch]`).
        dtype: optional dtype policy for the model, e.g. `"mixed_bfloat16"`.

    Returns:
        `(model, tokenizer)`: a `tfllm.models.GPT` or `tfllm.models.BERT` (dropout rates from
        the config) and a `tfllm.tokenizers.BytePairTokenizer` or `WordPieceTokenizer`; the
        tokenizer is `None`, with a warning, when the directory has no vocabulary files (a
        model-only directory, as `model.save_pretrained` writes).

    Raises:
        FileNotFoundError: no `config.json`, no weights, one of two GPT-2 vocabulary files.
        ValueError: an unsupported `model_type` or architecture option, missing or mis-shaped
            tensors, a vocabulary that does not fit the embedding.

    Example:

    >>> model, tokenizer = tfllm.convert.from_huggingface("all-MiniLM-L6-v2")
    >>> ids = tokenizer(["a sentence"])
    """
    directory = os.fspath(directory)
    hf_config = _read_config(directory)
    model_type = hf_config["model_type"]
    config = _gpt_config(hf_config) if model_type == "gpt2" else _bert_config(hf_config)
    tokenizer = _load_tokenizer(directory, model_type)
    if tokenizer is not None and tokenizer.vocabulary_size() != config["vocabulary_size"]:
        raise ValueError(
            f"The tokenizer's vocabulary in {directory!r} has {tokenizer.vocabulary_size()} tokens but the "
            f"model's token embedding has {config['vocabulary_size']} rows (config.json vocab_size); "
            "they must be the same size."
        )
    checkpoint = open_checkpoint(directory, allow_pickle=allow_pickle)
    # Before anything is built: the sizes config.json gives must be those of the tensors.
    _check_sizes(checkpoint, model_type, config, directory)

    if model_type == "gpt2":
        model = GPT(dtype=dtype, name="gpt", **config)
        layout = _gpt2_layout(model)
        prefix = _find_prefix(checkpoint, "wpe.weight")
        # A GPT2LMHeadModel file may keep the tied embedding only as `lm_head.weight`.
        if prefix + "wte.weight" not in checkpoint and "lm_head.weight" in checkpoint:
            layout[0] = (layout[0][0], ["lm_head.weight"], _Copy)
    else:
        model = BERT(dtype=dtype, name="bert", **config)
        layout = _bert_layout(model)
        prefix = _find_prefix(checkpoint, "embeddings.position_embeddings.weight")
    layout = [
        (variable, [name if name == "lm_head.weight" else prefix + name for name in names], transform)
        for variable, names, transform in layout
    ]
    _check_tensors(checkpoint, layout, directory)

    values = [transform.to_keras([checkpoint.read(name) for name in names]) for _, names, transform in layout]
    for (variable, _, _), value in zip(layout, values):
        variable.assign(value.astype(variable.dtype))
    return model, tokenizer


def _read_config(directory):
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory!r} is not a directory.")
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{CONFIG_FILE!r} not found in {directory!r}: a Hugging Face model directory holds config.json "
            "next to model.safetensors."
        )
    with open(path, encoding="utf-8") as file:
        try:
            config = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path!r} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path!r} must hold a JSON object. Received: {type(config).__name__}")
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"Unsupported model_type {model_type!r} in {path!r}. tfllm.convert reads "
            f"{' and '.join(map(repr, SUPPORTED_MODEL_TYPES))} models."
        )
    return config


def _require(hf_config, key, allowed, model_type):
    value = hf_config[key]
    if value not in allowed:
        raise ValueError(
            f"Unsupported {model_type} config: {key}={value!r}. tfllm's {model_type} model supports "
            f"{key} in {list(allowed)}."
        )


def _gpt_config(hf_config):
    """tfllm `GPT` keyword config from a Hugging Face `GPT2Config` dict."""
    hf = {**_GPT2_DEFAULTS, **hf_config}
    _require(hf, "activation_function", _GPT2_ACTIVATIONS, "gpt2")
    _require(hf, "tie_word_embeddings", (True,), "gpt2")
    _require(hf, "scale_attn_weights", (True,), "gpt2")
    _require(hf, "scale_attn_by_inverse_layer_idx", (False,), "gpt2")
    _require(hf, "add_cross_attention", (False,), "gpt2")
    return dict(
        vocabulary_size=hf["vocab_size"],
        num_layers=hf["n_layer"],
        num_heads=hf["n_head"],
        hidden_dim=hf["n_embd"],
        intermediate_dim=hf["n_inner"] if hf["n_inner"] is not None else 4 * hf["n_embd"],
        max_sequence_length=hf["n_positions"],
        dropout=hf["resid_pdrop"],
        layer_norm_epsilon=hf["layer_norm_epsilon"],
    )


def _bert_config(hf_config):
    """tfllm `BERT` keyword config from a Hugging Face `BertConfig` dict."""
    hf = {**_BERT_DEFAULTS, **hf_config}
    _require(hf, "hidden_act", _BERT_ACTIVATIONS, "bert")
    _require(hf, "position_embedding_type", ("absolute",), "bert")
    _require(hf, "is_decoder", (False,), "bert")
    _require(hf, "add_cross_attention", (False,), "bert")
    return dict(
        vocabulary_size=hf["vocab_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        hidden_dim=hf["hidden_size"],
        intermediate_dim=hf["intermediate_size"],
        max_sequence_length=hf["max_position_embeddings"],
        num_segments=hf["type_vocab_size"],
        dropout=hf["hidden_dropout_prob"],
        layer_norm_epsilon=hf["layer_norm_eps"],
    )


# The vocabulary files of each model type's tokenizer.
_VOCABULARY_FILES = {"gpt2": ("vocab.json", "merges.txt"), "bert": ("vocab.txt",)}


def _load_tokenizer(directory, model_type):
    """The directory's tokenizer; `None`, with a warning, for a model-only directory (what
    `model.save_pretrained` writes: no vocabulary files at all)."""
    from tfllm.tokenizers import BytePairTokenizer, WordPieceTokenizer

    files = _VOCABULARY_FILES[model_type]
    present = [name for name in files if os.path.isfile(os.path.join(directory, name))]
    if not present:
        warnings.warn(
            f"{directory!r} holds no tokenizer ({' and '.join(files)} not found): the model is loaded "
            "and no tokenizer is returned. Save the tokenizer into the directory (or load one from "
            "another) to tokenize text for this model.",
            stacklevel=3,
        )
        return None
    if model_type == "gpt2":
        return BytePairTokenizer.load(directory)
    return WordPieceTokenizer.load(directory)


# Per model type: the tensor whose shape gives (vocabulary_size, hidden_dim), the one giving
# max_sequence_length, the pattern numbering the blocks, and the block tensor giving
# intermediate_dim (with the axis it is on).
_SIZE_TENSORS = {
    "gpt2": ("wte.weight", "wpe.weight", re.compile(r"(?:^|\.)h\.(\d+)\."), ("h.0.mlp.c_fc.weight", 1)),
    "bert": (
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\."),
        ("encoder.layer.0.intermediate.dense.weight", 0),
    ),
}
_HF_KEYS = {
    "gpt2": dict(vocabulary_size="vocab_size", hidden_dim="n_embd", max_sequence_length="n_positions",
                 num_layers="n_layer", intermediate_dim="n_inner"),
    "bert": dict(vocabulary_size="vocab_size", hidden_dim="hidden_size", max_sequence_length="max_position_embeddings",
                 num_layers="num_hidden_layers", intermediate_dim="intermediate_size"),
}


def _check_sizes(checkpoint, model_type, config, directory):
    """Raises a `ValueError` before any model is built when config.json's sizes are not the
    checkpoint's (read from its header): a config can otherwise ask for a model of any size."""
    embedding_name, position_name, block_pattern, (intermediate_name, axis) = _SIZE_TENSORS[model_type]
    prefix = _find_prefix(checkpoint, position_name)
    found = {}
    embedding = prefix + embedding_name
    if embedding not in checkpoint and "lm_head.weight" in checkpoint:
        embedding = "lm_head.weight"
    if embedding in checkpoint and len(checkpoint.shape(embedding)) == 2:
        found["vocabulary_size"], found["hidden_dim"] = checkpoint.shape(embedding)
    if prefix + position_name in checkpoint and len(checkpoint.shape(prefix + position_name)) == 2:
        found["max_sequence_length"] = checkpoint.shape(prefix + position_name)[0]
    blocks = {int(match.group(1)) for name in checkpoint.names if (match := block_pattern.search(name))}
    found["num_layers"] = len(blocks)
    if prefix + intermediate_name in checkpoint and len(checkpoint.shape(prefix + intermediate_name)) == 2:
        found["intermediate_dim"] = checkpoint.shape(prefix + intermediate_name)[axis]
    wrong = [
        f"{_HF_KEYS[model_type][key]}={config[key]} but the checkpoint holds {value}"
        for key, value in found.items()
        if config[key] != value
    ]
    if wrong:
        raise ValueError(
            f"config.json in {directory!r} does not describe its checkpoint {checkpoint.description!r}: "
            + "; ".join(wrong)
            + ". Nothing was built."
        )


def _find_prefix(checkpoint, anchor):
    """The prefix a head model puts before the base model's names (`"bert."`, `"transformer."`).

    `anchor` is a tensor every checkpoint of the model type has; without it the names are taken
    unprefixed, and the missing tensors are reported as such.
    """
    if anchor in checkpoint:
        return ""
    prefixes = sorted(name[: -len(anchor)] for name in checkpoint.names if name.endswith("." + anchor))
    return prefixes[0] if prefixes else ""


def _check_tensors(checkpoint, layout, directory):
    """Raises one `ValueError` listing every missing, mis-shaped or non-float tensor."""
    missing, wrong = [], []
    for variable, names, transform in layout:
        for name, expected in zip(names, _hf_shapes(variable, transform)):
            if name not in checkpoint:
                missing.append(f"{name} (expected shape {expected})")
            elif checkpoint.shape(name) != expected:
                wrong.append(f"{name}: expected shape {expected}, found {checkpoint.shape(name)}")
            elif not checkpoint.is_float(name):
                wrong.append(f"{name}: expected floating-point values, found dtype {checkpoint.dtype(name)}")
    if missing or wrong:
        lines = [f"The checkpoint {checkpoint.description!r} does not fit the model its config.json describes:"]
        if missing:
            lines.append(f"missing tensors ({len(missing)}): " + "; ".join(missing[:20]) + ("; ..." if len(missing) > 20 else ""))
        if wrong:
            lines.append(f"mis-shaped tensors ({len(wrong)}): " + "; ".join(wrong[:20]) + ("; ..." if len(wrong) > 20 else ""))
        raise ValueError("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def to_huggingface(model, directory, tokenizer=None):
    """Writes a tfllm GPT or BERT as a Hugging Face directory that `transformers` loads.

    A GPT becomes a `GPT2LMHeadModel` (`model_type` `"gpt2"`, the head tied to the token
    embedding), a BERT a `BertModel` (`"bert"`, with its pooler): `config.json` and
    `model.safetensors`, written from NumPy (no PyTorch needed), plus, with a tokenizer, its
    vocabulary files and a `tokenizer_config.json` for `AutoTokenizer`. `from_huggingface`
    reads the directory back.

    Args:
        model: a `tfllm.models.GPT` or `tfllm.models.BERT` (for a task model such as
            `BERTClassifier`, pass its backbone: `classifier.backbone`).
        directory: where to write; created if needed, files of the same name overwritten.
        tokenizer: optional `tfllm.tokenizers.BytePairTokenizer` (GPT) or `WordPieceTokenizer`
            (BERT) whose vocabulary size equals the model's.

    Returns:
        The directory.

    Raises:
        ValueError: `model` is not a tfllm GPT or BERT (or uses options GPT-2 / BERT lack, such
            as the per-layer sizes of a pruned model), or the tokenizer does not match it.

    Example:

    >>> tfllm.convert.to_huggingface(model, "exported", tokenizer)
    >>> transformers.AutoModel.from_pretrained("exported")
    """
    kind = _model_kind(model)
    _check_uniform_sizes(model)
    if kind == "gpt":
        hf_config = {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": model.vocabulary_size,
            "n_positions": model.max_sequence_length,
            "n_embd": model.hidden_dim,
            "n_layer": model.num_layers,
            "n_head": model.num_heads,
            "n_inner": model.intermediate_dim,
            "activation_function": "gelu_new",
            "resid_pdrop": model.dropout,
            "embd_pdrop": model.dropout,
            "attn_pdrop": model.dropout,
            "layer_norm_epsilon": model.layer_norm_epsilon,
            "tie_word_embeddings": True,
        }
        layout, prefix = _gpt2_layout(model), "transformer."
    else:
        hf_config = {
            "model_type": "bert",
            "architectures": ["BertModel"],
            "vocab_size": model.vocabulary_size,
            "hidden_size": model.hidden_dim,
            "num_hidden_layers": model.num_layers,
            "num_attention_heads": model.num_heads,
            "intermediate_size": model.intermediate_dim,
            "hidden_act": "gelu",
            "hidden_dropout_prob": model.dropout,
            "attention_probs_dropout_prob": model.dropout,
            "max_position_embeddings": model.max_sequence_length,
            "type_vocab_size": model.num_segments,
            "layer_norm_eps": model.layer_norm_epsilon,
            "position_embedding_type": "absolute",
            "pad_token_id": 0,
        }
        layout, prefix = _bert_layout(model), ""
    hf_config["dtype"] = "float32"
    vocabulary_size = model.vocabulary_size

    if tokenizer is not None:
        _check_tokenizer(tokenizer, kind, vocabulary_size)
        hf_config.update(_special_token_ids(tokenizer, kind))

    tensors = {}
    for variable, names, transform in layout:
        value = keras.ops.convert_to_numpy(variable).astype(np.float32)
        for name, part in zip(names, transform.to_hf(value)):
            tensors[prefix + name] = part

    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(hf_config, file, indent=2)
    write_safetensors(os.path.join(directory, "model.safetensors"), tensors)
    if tokenizer is not None:
        _save_tokenizer(tokenizer, kind, directory, hf_config)
    return directory


def _model_kind(model):
    if isinstance(model, BERT):
        return "bert"
    if isinstance(model, GPT):
        return "gpt"
    hint = ""
    if isinstance(getattr(model, "backbone", None), (GPT, BERT)):
        hint = " For a task model such as BERTClassifier or BERTPretrainer, pass its backbone: model.backbone."
    raise ValueError(
        f"to_huggingface expects a `tfllm.models.GPT` or `tfllm.models.BERT`. "
        f"Received: {type(model).__name__} {getattr(model, 'name', model)!r}.{hint}"
    )


def _check_uniform_sizes(model):
    """GPT-2 and BERT configs have one head count and feed-forward width for every layer, and
    heads of `hidden_size / num_attention_heads`: a pruned model's sizes cannot be written."""
    per_layer = [
        f"{key}={getattr(model, key)}" for key in ("num_heads", "intermediate_dim") if isinstance(getattr(model, key), list)
    ]
    head_dim = getattr(model, "head_dim", None)
    if not per_layer and head_dim is not None and head_dim * model.num_heads != model.hidden_dim:
        per_layer.append(f"head_dim={head_dim} with num_heads={model.num_heads}, hidden_dim={model.hidden_dim}")
    if per_layer:
        raise ValueError(
            f"A Hugging Face {'GPT-2' if isinstance(model, GPT) else 'BERT'} config has the same sizes in every layer "
            f"and heads of hidden_dim / num_heads; {model.name} has {', '.join(per_layer)} (a pruned model?), "
            "which to_huggingface cannot export. Save it as .keras or export it for TF Serving instead."
        )


def _check_tokenizer(tokenizer, kind, vocabulary_size):
    from tfllm.tokenizers import BytePairTokenizer, WordPieceTokenizer

    expected = BytePairTokenizer if kind == "gpt" else WordPieceTokenizer
    if not isinstance(tokenizer, expected):
        raise ValueError(
            f"A {'GPT' if kind == 'gpt' else 'BERT'} model is saved with a tfllm {expected.__name__}. "
            f"Received: {type(tokenizer).__name__}"
        )
    if tokenizer.vocabulary_size() != vocabulary_size:
        raise ValueError(
            f"The tokenizer has {tokenizer.vocabulary_size()} tokens but the model's token embedding has "
            f"{vocabulary_size} rows; they must be the same size."
        )


def _special_token_ids(tokenizer, kind):
    """The config's special token ids (GPT-2: `<|endoftext|>` starts and ends; BERT: padding)."""
    if kind == "bert":
        return {"pad_token_id": tokenizer.pad_token_id}
    if "<|endoftext|>" in tokenizer.special_tokens:
        end = tokenizer.token_to_id("<|endoftext|>")
        return {"bos_token_id": end, "eos_token_id": end}
    return {}


def _save_tokenizer(tokenizer, kind, directory, hf_config):
    tokenizer.save(directory)
    if kind == "gpt":
        settings = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False}
        if "<|endoftext|>" in tokenizer.special_tokens:
            settings.update(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
        settings["model_max_length"] = hf_config["n_positions"]
        special_map = {key: settings[key] for key in ("bos_token", "eos_token", "unk_token") if key in settings}
    else:
        special_map = dict(
            unk_token=tokenizer.unknown_token,
            sep_token=tokenizer.sep_token,
            pad_token=tokenizer.pad_token,
            cls_token=tokenizer.cls_token,
            mask_token=tokenizer.mask_token,
        )
        settings = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": bool(tokenizer.lowercase),
            "strip_accents": bool(tokenizer.strip_accents),
            "tokenize_chinese_chars": bool(tokenizer.split_on_cjk),
            **special_map,
            "model_max_length": hf_config["max_position_embeddings"],
        }
    with open(os.path.join(directory, TOKENIZER_CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(settings, file, indent=2)
    with open(os.path.join(directory, SPECIAL_TOKENS_MAP_FILE), "w", encoding="utf-8") as file:
        json.dump(special_map, file, indent=2)
