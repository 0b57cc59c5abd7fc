"""Exports a tokenizer in a SavedModel and runs it in a fresh process, as TF Serving would."""

import json
import os
import subprocess
import sys
import textwrap

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2


class TokenizerModule(tf.Module):
    """A tf.Module holding a tokenizer, with serving-style signatures (batch first, dense)."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, text):
        ids = self.tokenizer(text)
        return {"token_ids": ids.to_tensor(default_value=-1), "lengths": ids.row_lengths()}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int64)])
    def detokenize(self, token_ids, lengths):
        return {"text": self.tokenizer.detokenize(tf.RaggedTensor.from_tensor(token_ids, lengths=lengths))}


def export(tokenizer, path):
    module = TokenizerModule(tokenizer)
    tf.saved_model.save(module, path, signatures={"serving_default": module.tokenize, "detokenize": module.detokenize})
    return path


def op_types(path):
    """Every op type in the SavedModel's graph and function library."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        proto.ParseFromString(file.read())
    types = set()
    for meta_graph in proto.meta_graphs:
        types.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            types.update(node.op for node in function.node_def)
    return types


_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the TF Text ops, as TF Serving links them in)

    path, texts_path, out_path = sys.argv[1:4]
    with open(texts_path, encoding="utf-8") as file:
        texts = json.load(file)
    loaded = tf.saved_model.load(path)
    tokenized = loaded.signatures["serving_default"](text=tf.constant(texts))
    text = loaded.signatures["detokenize"](token_ids=tf.cast(tokenized["token_ids"], tf.int32), lengths=tokenized["lengths"])
    lengths = tokenized["lengths"].numpy().tolist()
    ids = [row[:n] for row, n in zip(tokenized["token_ids"].numpy().tolist(), lengths)]
    modules = sorted(name for name in sys.modules if name.split(".")[0] in ("tfllm", "keras_hub"))
    with open(out_path, "w", encoding="utf-8") as file:
        json.dump({"ids": ids, "text": [t.decode("utf-8") for t in text["text"].numpy()], "modules": modules}, file)
    """
)


def run_in_fresh_process(path, texts, tmp_path):
    """Loads the SavedModel in a new Python that imports only tensorflow and tensorflow_text.

    Returns `{"ids": [...], "text": [...], "modules": [...]}` (modules: any tfllm or keras_hub
    module that got imported anyway).
    """
    texts_path, out_path = os.path.join(tmp_path, "texts.json"), os.path.join(tmp_path, "out.json")
    with open(texts_path, "w", encoding="utf-8") as file:
        json.dump(texts, file)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, path, texts_path, out_path],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out_path, encoding="utf-8") as file:
        return json.load(file)
