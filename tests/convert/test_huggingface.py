"""tfllm.convert against `transformers` (PyTorch, CPU): same outputs, both directions, clear errors."""

import json
import os
import re
import shutil

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tfllm
from tests.convert.conftest import (
    BERT_VOCABULARY,
    SENTENCES,
    make_bert_directory,
    make_gpt2_directory,
    max_difference,
    padded_batch,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4


def _torch(array):
    return torch.tensor(np.asarray(array), dtype=torch.long)


def gpt2_difference(hf_model, model, lengths=(11, 7, 3)):
    """Max |logits difference| on a right-padded batch, over the real tokens, and over all."""
    ids, mask = padded_batch(hf_model.config.vocab_size, lengths)
    with torch.no_grad():
        expected = hf_model(input_ids=_torch(ids), attention_mask=_torch(mask)).logits.numpy()
    logits = keras.ops.convert_to_numpy(model({"token_ids": ids, "padding_mask": mask}))
    return max_difference(expected, logits, mask), max_difference(expected, logits)


def bert_outputs(hf_model, model, lengths=(11, 7, 3)):
    """`(expected, ours, mask)`: BertModel's and tfllm's outputs on a padded batch with segments."""
    ids, mask = padded_batch(hf_model.config.vocab_size, lengths)
    segments = (np.arange(ids.shape[1])[None, :] >= 4).astype("int32") * (hf_model.config.type_vocab_size - 1) * mask
    with torch.no_grad():
        expected = hf_model(input_ids=_torch(ids), attention_mask=_torch(mask), token_type_ids=_torch(segments))
    ours = model({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})
    ours = {key: keras.ops.convert_to_numpy(value) for key, value in ours.items()}
    return expected, ours, mask


def assert_bert_equal(hf_model, model):
    base = hf_model.base_model if hasattr(hf_model, "base_model") else hf_model
    expected, ours, mask = bert_outputs(base, model)
    assert max_difference(expected.last_hidden_state.numpy(), ours["sequence_output"], mask) <= TOLERANCE
    assert max_difference(expected.last_hidden_state.numpy(), ours["sequence_output"]) <= TOLERANCE
    assert max_difference(expected.pooler_output.numpy(), ours["pooled_output"]) <= TOLERANCE


# ------------------------------------------------------------------------------ import


@pytest.mark.parametrize("model_class", ["GPT2LMHeadModel", "GPT2Model"])
def test_gpt2_logits_match_transformers(tmp_path, model_class):
    make_gpt2_directory(tmp_path, model_class)
    # The reference is always the language model, loaded by transformers from the same files.
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    model, tokenizer = tfllm.convert.from_huggingface(tmp_path)
    assert isinstance(tokenizer, tfllm.tokenizers.BytePairTokenizer)
    assert model.output.shape[-1] == hf_model.config.vocab_size
    real, everywhere = gpt2_difference(hf_model, model)
    assert real <= TOLERANCE and everywhere <= TOLERANCE
    # The check can fail: another model's weights are far off.
    other = transformers.GPT2LMHeadModel(hf_model.config).eval()
    assert gpt2_difference(other, model)[0] > 0.1


def test_gpt2_without_padding_and_at_full_length(tmp_path):
    hf_model = make_gpt2_directory(tmp_path)
    model, _ = tfllm.convert.from_huggingface(tmp_path)
    real, _ = gpt2_difference(hf_model, model, lengths=(40, 40))
    assert real <= TOLERANCE


@pytest.mark.parametrize("model_class", ["BertModel", "BertForSequenceClassification", "BertForPreTraining"])
def test_bert_outputs_match_transformers(tmp_path, model_class):
    hf_model = make_bert_directory(tmp_path, model_class)
    model, tokenizer = tfllm.convert.from_huggingface(tmp_path)
    assert isinstance(tokenizer, tfllm.tokenizers.WordPieceTokenizer)
    assert_bert_equal(hf_model, model)
    expected, ours, _ = bert_outputs(transformers.BertModel(hf_model.config).eval(), model)
    assert max_difference(expected.last_hidden_state.numpy(), ours["sequence_output"]) > 0.1


def test_gpt2_tokenizer_matches_transformers(tmp_path):
    make_gpt2_directory(tmp_path)
    _, tokenizer = tfllm.convert.from_huggingface(tmp_path)
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer(SENTENCES).to_list() == reference(SENTENCES)["input_ids"]


@pytest.mark.parametrize("lowercase", [True, False])
def test_bert_tokenizer_honours_do_lower_case(tmp_path, lowercase):
    make_bert_directory(tmp_path)
    reference = transformers.BertTokenizer(os.path.join(tmp_path, "vocab.txt"), do_lower_case=lowercase)
    reference.save_pretrained(tmp_path)
    _, tokenizer = tfllm.convert.from_huggingface(tmp_path)
    assert tokenizer.lowercase == lowercase
    assert tokenizer(SENTENCES).to_list() == reference(SENTENCES, add_special_tokens=False)["input_ids"]


def test_bfloat16_and_sharded_checkpoints(tmp_path):
    hf_model = make_gpt2_directory(tmp_path / "float32")
    for name in ("bfloat16", "sharded"):
        shutil.copytree(tmp_path / "float32", tmp_path / name, ignore=shutil.ignore_patterns("model.safetensors"))
    hf_model.to(torch.bfloat16).save_pretrained(tmp_path / "bfloat16")
    hf_model.to(torch.float32).save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert os.path.exists(tmp_path / "sharded" / "model.safetensors.index.json")
    assert not os.path.exists(tmp_path / "sharded" / "model.safetensors")

    # bfloat16 weights, widened exactly: the reference holds the same rounded values in float32.
    model, _ = tfllm.convert.from_huggingface(tmp_path / "bfloat16")
    assert gpt2_difference(hf_model, model)[0] <= TOLERANCE
    model, _ = tfllm.convert.from_huggingface(tmp_path / "sharded")
    assert gpt2_difference(hf_model, model)[0] <= TOLERANCE


def test_pickled_checkpoint_needs_the_opt_in(tmp_path):
    hf_model = make_bert_directory(tmp_path)
    state = load_file(os.path.join(tmp_path, "model.safetensors"))
    os.remove(os.path.join(tmp_path, "model.safetensors"))
    torch.save({name: torch.from_numpy(array) for name, array in state.items()}, os.path.join(tmp_path, "pytorch_model.bin"))
    with pytest.raises(FileNotFoundError, match="allow_pickle=True"):
        tfllm.convert.from_huggingface(tmp_path)
    model, _ = tfllm.convert.from_huggingface(tmp_path, allow_pickle=True)
    assert_bert_equal(hf_model, model)


def test_dtype_policy(tmp_path):
    make_bert_directory(tmp_path)
    model, _ = tfllm.convert.from_huggingface(tmp_path, dtype="mixed_bfloat16")
    assert model.transformer_blocks[0].compute_dtype == "bfloat16"
    assert model.transformer_blocks[0].qkv_dense.kernel.dtype == "float32"


# ------------------------------------------------------------------------------ export and round trip


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.3, variable.shape).astype("float32"))
    return model


def test_gpt_round_trip(tmp_path):
    tokenizer = tfllm.tokenizers.BytePairTokenizer.train(SENTENCES * 3, 300)
    model = _randomize(tfllm.models.GPT("gpt-test", vocabulary_size=tokenizer.vocabulary_size()))
    tfllm.convert.to_huggingface(model, tmp_path, tokenizer)

    hf_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(hf_model).__name__ == "GPT2LMHeadModel"
    assert gpt2_difference(hf_model, model)[0] <= TOLERANCE
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert hf_tokenizer(SENTENCES)["input_ids"] == tokenizer(SENTENCES).to_list()

    again, again_tokenizer = tfllm.convert.from_huggingface(tmp_path)
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert again_tokenizer(SENTENCES).to_list() == tokenizer(SENTENCES).to_list()


@pytest.mark.parametrize("lowercase", [True, False])
def test_bert_round_trip(tmp_path, lowercase):
    tokenizer = tfllm.tokenizers.WordPieceTokenizer(BERT_VOCABULARY, lowercase=lowercase, strip_accents=lowercase)
    model = _randomize(tfllm.models.BERT("bert-test", vocabulary_size=len(BERT_VOCABULARY), num_segments=3))
    tfllm.convert.to_huggingface(model, tmp_path, tokenizer)

    hf_model = transformers.AutoModel.from_pretrained(tmp_path).eval()
    assert type(hf_model).__name__ == "BertModel"
    assert_bert_equal(hf_model, model)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert hf_tokenizer(SENTENCES, add_special_tokens=False)["input_ids"] == tokenizer(SENTENCES).to_list()

    again, again_tokenizer = tfllm.convert.from_huggingface(tmp_path)
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert again_tokenizer.lowercase == lowercase


def test_export_refuses_what_huggingface_cannot_hold(tmp_path):
    backbone = tfllm.models.BERT("bert-test")
    classifier = tfllm.models.BERTClassifier(backbone, num_classes=2)
    with pytest.raises(ValueError, match=r"pass its backbone: model.backbone"):
        tfllm.convert.to_huggingface(classifier, tmp_path)
    tokenizer = tfllm.tokenizers.WordPieceTokenizer(BERT_VOCABULARY)
    with pytest.raises(ValueError, match=f"has {len(BERT_VOCABULARY)} tokens but the model's token embedding has 512 rows"):
        tfllm.convert.to_huggingface(backbone, tmp_path, tokenizer)
    with pytest.raises(ValueError, match="BytePairTokenizer"):
        tfllm.convert.to_huggingface(tfllm.models.GPT("gpt-test"), tmp_path, tokenizer)
    with pytest.raises(ValueError, match=r"same sizes in every layer.*num_heads=\[2, 1\]"):
        tfllm.convert.to_huggingface(tfllm.models.BERT("bert-test", num_heads=[2, 1], head_dim=16), tmp_path)
    with pytest.raises(ValueError, match=r"head_dim=8 with num_heads=2, hidden_dim=32"):
        tfllm.convert.to_huggingface(tfllm.models.GPT("gpt-test", head_dim=8), tmp_path)
    assert not os.path.exists(tmp_path / "config.json")


# ------------------------------------------------------------------------------ bad input


@pytest.fixture
def bert_directory(tmp_path):
    make_bert_directory(tmp_path / "bert")
    return tmp_path / "bert"


def _edit_config(directory, **changes):
    path = os.path.join(directory, "config.json")
    with open(path) as file:
        config = json.load(file)
    config.update(changes)
    with open(path, "w") as file:
        json.dump(config, file)


def _edit_tensors(directory, edit):
    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def test_error_without_config(tmp_path, bert_directory):
    os.remove(bert_directory / "config.json")
    with pytest.raises(FileNotFoundError, match="'config.json' not found"):
        tfllm.convert.from_huggingface(bert_directory)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        tfllm.convert.from_huggingface(tmp_path / "nowhere")


def test_error_for_an_unsupported_model_type(bert_directory):
    _edit_config(bert_directory, model_type="roberta")
    with pytest.raises(ValueError, match="Unsupported model_type 'roberta'.*'gpt2' and 'bert'"):
        tfllm.convert.from_huggingface(bert_directory)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(hidden_act="relu"), "hidden_act='relu'"),
        (dict(position_embedding_type="relative_key"), "position_embedding_type='relative_key'"),
    ],
)
def test_error_for_unsupported_options(bert_directory, changes, message):
    _edit_config(bert_directory, **changes)
    with pytest.raises(ValueError, match=message):
        tfllm.convert.from_huggingface(bert_directory)


def test_error_for_missing_tensors(bert_directory):
    def drop(tensors):
        del tensors["encoder.layer.1.attention.self.key.weight"]
        del tensors["pooler.dense.bias"]

    _edit_tensors(bert_directory, drop)
    with pytest.raises(ValueError, match="missing tensors") as error:
        tfllm.convert.from_huggingface(bert_directory)
    message = str(error.value)
    assert "encoder.layer.1.attention.self.key.weight (expected shape (32, 32))" in message
    assert "pooler.dense.bias (expected shape (32,))" in message


def test_error_for_mis_shaped_tensors(bert_directory):
    def cut(tensors):
        tensors["encoder.layer.1.intermediate.dense.weight"] = tensors["encoder.layer.1.intermediate.dense.weight"][:40]

    _edit_tensors(bert_directory, cut)
    with pytest.raises(
        ValueError, match=r"encoder.layer.1.intermediate.dense.weight: expected shape \(48, 32\), found \(40, 32\)"
    ):
        tfllm.convert.from_huggingface(bert_directory)


def test_error_when_the_checkpoint_disagrees_with_the_config(bert_directory):
    _edit_config(bert_directory, num_hidden_layers=3)
    with pytest.raises(ValueError, match=r"num_hidden_layers=3 but the checkpoint holds 2"):
        tfllm.convert.from_huggingface(bert_directory)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(n_layer=1_000_000_000), r"n_layer=1000000000 but the checkpoint holds 2"),
        (dict(n_embd=4096, n_head=4), r"n_embd=4096 but the checkpoint holds 32"),
        (dict(n_positions=10**7), r"n_positions=10000000 but the checkpoint holds 40"),
        (dict(n_inner=10**6), r"n_inner=1000000 but the checkpoint holds 128"),
    ],
)
def test_sizes_are_checked_against_the_header_before_anything_is_built(tmp_path, monkeypatch, changes, message):
    """A config.json asking for a huge model is refused from the checkpoint's header alone."""
    make_gpt2_directory(tmp_path)
    _edit_config(tmp_path, **changes)

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built before the sizes were checked")

    monkeypatch.setattr(tfllm.models.GPT, "__init__", no_build)
    with pytest.raises(ValueError, match=message + r".*Nothing was built"):
        tfllm.convert.from_huggingface(tmp_path)


def test_a_truncated_weights_file_is_named(bert_directory):
    path = bert_directory / "model.safetensors"
    data = path.read_bytes()
    for size in (len(data) // 2, 20, 4):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match=re.escape(repr(str(path))) + " is not a readable safetensors file"):
            tfllm.convert.from_huggingface(bert_directory)


def test_a_model_only_directory_loads_without_a_tokenizer(tmp_path):
    hf_model = make_bert_directory(tmp_path)
    for name in os.listdir(tmp_path):
        if name not in ("config.json", "model.safetensors"):
            os.remove(tmp_path / name)
    with pytest.warns(UserWarning, match="holds no tokenizer .*vocab.txt not found"):
        model, tokenizer = tfllm.convert.from_huggingface(tmp_path)
    assert tokenizer is None
    assert_bert_equal(hf_model, model)


def test_error_for_a_vocabulary_that_does_not_fit(bert_directory):
    with open(bert_directory / "vocab.txt", "a", encoding="utf-8") as file:
        file.write("extra\n")
    with pytest.raises(ValueError, match=f"has {len(BERT_VOCABULARY) + 1} tokens but the model's token embedding has"):
        tfllm.convert.from_huggingface(bert_directory)


def test_error_without_weights_or_with_half_a_vocabulary(bert_directory, tmp_path):
    make_gpt2_directory(tmp_path / "gpt2")
    os.remove(tmp_path / "gpt2" / "merges.txt")
    with pytest.raises(FileNotFoundError, match="'merges.txt' not found"):
        tfllm.convert.from_huggingface(tmp_path / "gpt2")
    os.remove(bert_directory / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="No weights"):
        tfllm.convert.from_huggingface(bert_directory)


def test_nothing_is_assigned_before_every_tensor_is_checked(bert_directory, monkeypatch):
    """The check runs first, so a bad last tensor stops the import before any weight is set."""
    assigned = []
    original = keras.Variable.assign

    def record(variable, value):
        assigned.append(variable.path)
        return original(variable, value)

    def cut(tensors):
        tensors["pooler.dense.weight"] = tensors["pooler.dense.weight"][:, :8]

    _edit_tensors(bert_directory, cut)
    monkeypatch.setattr(keras.Variable, "assign", record)
    with pytest.raises(ValueError, match=r"pooler.dense.weight: expected shape \(32, 32\), found \(32, 8\)"):
        tfllm.convert.from_huggingface(bert_directory)
    assert not [path for path in assigned if "embeddings" in path or "transformer_block" in path]
