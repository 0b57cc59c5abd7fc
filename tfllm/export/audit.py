"""Which ops a SavedModel needs, and whether a default TF Serving can run them."""

import collections
import dataclasses
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# The ops tensorflow-text 2.20.0 registers: the TF Text that TF Serving 2.20 links in
# (serving's master pins it too). A server cannot load any other op library at run time.
SERVING_TF_TEXT_OPS = frozenset(
    """
    CaseFoldUTF8 ConstrainedSequence FastBertNormalize FastWordpieceTokenizeWithOffsets
    FindSourceOffsets MaxSpanningTree NormalizeUTF8 NormalizeUTF8WithOffsetsMap PhraseTokenize
    RegexSplitWithOffsets RougeL SentenceFragments SentenceFragmentsV2 SentencepieceDetokenizeOp
    SentencepieceIdToStringOp SentencepieceOp SentencepieceStringToIdOp SentencepieceTokenizeOp
    SentencepieceTokenizeWithOffsetsOp SentencepieceVocabSizeOp SplitMergeTokenizeWithOffsets
    TokenizerFromLogits UnicodeScriptTokenizeWithOffsets WhitespaceTokenizeWithOffsets
    WordpieceTokenizeWithOffsets TFText>BoiseTagsToOffsets TFText>ByteSplitByOffsets
    TFText>ByteSplitWithOffsets TFText>FastSentencepieceDetokenize TFText>FastSentencepieceTokenize
    TFText>FastWordpieceDetokenize TFText>NgramsStringJoin TFText>OffsetsToBoiseTags
    TFText>PhraseDetokenize TFText>RoundRobinGenerateMasks TFText>RoundRobinTrim TFText>Utf8Binarize
    TFText>WhitespaceTokenizeWithOffsetsV2
    """.split()
)
# TF Text ops that servers 2.12 to 2.19 (TF Text 2.12.1) lack (tensorflow/serving#2267).
NEWER_SERVER_TF_TEXT_OPS = frozenset(["TFText>Utf8Binarize", "TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks"])
_PYTHON_OPS = frozenset(["PyFunc", "PyFuncStateless", "EagerPyFunc"])


class AuditError(ValueError):
    """A SavedModel uses ops that a default TF Serving cannot run."""


@dataclasses.dataclass
class AuditReport:
    """What `audit` found.

    Attributes:
        path: the SavedModel directory.
        op_counts: `{op type: number of nodes}` over the graph and every function.
        tf_text_ops: the TF Text ops used (all present in TF Serving's TF Text).
        problems: one line per op (or function) a default TF Serving cannot run.
        minimum_serving_version: `"2.20"` when a TF Text op needs it, else `"2.12"`.
    """

    path: str
    op_counts: dict
    tf_text_ops: list
    problems: list
    minimum_serving_version: str

    @property
    def ok(self):
        return not self.problems

    @property
    def non_core_ops(self):
        """Every op that is not core TensorFlow (TF Text ops and unknown ones)."""
        return sorted(op for op in self.op_counts if not _is_core(op))

    def __str__(self):
        lines = [f"SavedModel {self.path}: {sum(self.op_counts.values())} nodes, {len(self.op_counts)} op types."]
        lines.append("Non-core ops: " + (", ".join(self.non_core_ops) or "none"))
        lines.append(f"Needs TF Serving >= {self.minimum_serving_version}.")
        lines.extend(f"PROBLEM: {problem}" for problem in self.problems)
        return "\n".join(lines)


def audit(path, raise_on_failure=True):
    """Lists the ops of a SavedModel that are not core TensorFlow and checks them for serving.

    A default TF Serving (XLA off, TF Text 2.20 linked in) cannot run: `PyFunc` ops (Python
    callbacks, absent from a server), `Xla*` ops (`XlaDynamicUpdateSlice` from
    `keras.ops.slice_update`, compiled clusters), functions marked `jit_compile=True`, TF
    Text ops missing from the server's TF Text, and ops from any other custom library.

    Args:
        path: a SavedModel directory (one version: `saved_models/<name>/<version>`).
        raise_on_failure: raise `AuditError` when there is a problem (default); otherwise
            return the report either way.

    Returns:
        An `AuditReport`.

    Raises:
        FileNotFoundError if `path` has no `saved_model.pb`; `AuditError` listing every
        problem.

    Example:

    >>> report = tfllm.export.audit("saved_models/gpt/1")
    >>> report.non_core_ops
    []
    """
    proto_path = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(proto_path):
        raise FileNotFoundError(f"No SavedModel at {path}: {proto_path} does not exist.")
    saved_model = saved_model_pb2.SavedModel()
    with open(proto_path, "rb") as file:
        saved_model.ParseFromString(file.read())

    counts = collections.Counter()
    problems = []
    for meta_graph in saved_model.meta_graphs:
        counts.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            counts.update(node.op for node in function.node_def)
            if function.attr["_XlaMustCompile"].b:
                problems.append(
                    f"function {function.signature.name} is compiled with XLA (jit_compile=True); "
                    "TF Serving runs with XLA off"
                )
        # A node may call a library function by its name: that is not an op.
        for function in meta_graph.graph_def.library.function:
            counts.pop(function.signature.name, None)
    tf_text_ops = sorted(op for op in counts if op in SERVING_TF_TEXT_OPS)
    for op in sorted(counts):
        if op in _PYTHON_OPS:
            problems.append(f"{op}: a Python callback, which a SavedModel cannot carry to a server")
        elif op.startswith("Xla") or op.startswith("_Xla"):
            problems.append(f"{op}: an XLA op, which fails on a TF Serving started with XLA off")
        elif not _is_core(op) and op not in SERVING_TF_TEXT_OPS:
            problems.append(f"{op}: not a core TensorFlow op nor in TF Serving's TF Text (2.20)")
    minimum = "2.20" if NEWER_SERVER_TF_TEXT_OPS.intersection(counts) else "2.12"
    report = AuditReport(path, dict(counts), tf_text_ops, problems, minimum)
    if problems and raise_on_failure:
        raise AuditError(str(report))
    return report


def _is_core(op):
    # `tf.raw_ops` holds every op of TensorFlow's own library and nothing from tensorflow-text.
    return hasattr(tf.raw_ops, op) and not op.startswith("Xla")
