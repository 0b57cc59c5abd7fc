"""`tfllm.export.predict` takes the REST bodies TF Serving takes and rejects the ones it rejects,
with its wording: the rules of tensorflow_serving/util/json_tensor.cc."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfllm.export import predict


class _TwoInputs(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([None], tf.int32, name="n")])
    def repeat(self, text, n):
        return {"text": tf.strings.join([text, tf.strings.as_string(n)]), "raw_bytes": text, "n": n * 2}


_DTYPES = {"f": tf.float32, "d": tf.float64, "i": tf.int32, "l": tf.int64, "b": tf.bool, "s": tf.string, "small": tf.int8}


class _Types(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], dtype, name=name) for name, dtype in _DTYPES.items()])
    def identity(self, f, d, i, l, b, s, small):
        return {"f": f, "d": d, "i": i, "l": l, "b": b, "s_bytes": s, "small": small}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="m")])
    def matrix(self, m):
        return {"m": m}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="s")])
    def strings(self, s):
        return {"s_bytes": s}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("rest") / "model")
    types, two = _Types(), _TwoInputs()
    module = tf.Module()
    module.types, module.two = types, two
    signatures = {"serving_default": two.repeat, "types": types.identity, "matrix": types.matrix, "strings": types.strings}
    tf.saved_model.save(module, path, signatures=signatures)
    return tf.saved_model.load(path)


_VALID = {"f": [1.5], "d": [2.5], "i": [3], "l": [4], "b": [True], "s": ["x"], "small": [5]}


def _columns(**overrides):
    return {"signature_name": "types", "inputs": {**_VALID, **overrides}}


def test_predict_follows_the_rest_api(loaded):
    rows = predict(loaded, {"instances": [{"text": "a", "n": 1}, {"text": {"b64": "w6k="}, "n": 2}]})
    assert rows["predictions"] == [
        {"text": "a1", "raw_bytes": {"b64": "YQ=="}, "n": 2},
        {"text": "é2", "raw_bytes": {"b64": "w6k="}, "n": 4},
    ]
    with pytest.raises(ValueError, match="'text' is not valid UTF-8"):
        predict(loaded, {"instances": [{"text": {"b64": "/w=="}, "n": 2}]})
    columns = predict(loaded, {"inputs": {"text": ["a", "b"], "n": [1, 2]}})
    assert columns["outputs"]["text"] == ["a1", "b2"] and columns["outputs"]["n"] == [2, 4]
    # A signature with one input takes plain rows, base64 objects among them.
    strings = predict(loaded, {"signature_name": "strings", "instances": ["a", {"b64": "Yg=="}]})
    assert strings["predictions"] == [{"b64": "YQ=="}, {"b64": "Yg=="}]


def test_values_each_dtype_takes(loaded):
    inputs = {
        # Integers convert to floats; NaN and Infinity are JSON literals the server parses, and a
        # number beyond float32's range becomes infinite there (its value is cast).
        "f": [1, 2.5, math.nan, math.inf, -math.inf, 1e39],
        "d": [2**53, 0.1, 1e300, -1, math.nan, 7],
        "i": [-(2**31), 2**31 - 1, 0, 7, -7, 1],
        "l": [2**62, -(2**63), 0, 1, 2, 3],
        "b": [True, False, True, False, True, False],
        # base64 without padding or with whitespace, as the server's decoder (absl) takes it.
        "s": ["é", {"b64": "w6k="}, {"b64": "w6k"}, {"b64": " w6\nk= "}, {"b64": ""}, ""],
        "small": [-128, 127, 0, 1, 2, 3],
    }
    outputs = predict(loaded, {"signature_name": "types", "inputs": inputs})["outputs"]
    np.testing.assert_array_equal(outputs["f"], np.array([1, 2.5, np.nan, np.inf, -np.inf, np.inf], np.float32))
    assert outputs["d"][:4] == [2.0**53, 0.1, 1e300, -1.0] and math.isnan(outputs["d"][4])
    assert outputs["i"] == inputs["i"] and outputs["l"] == inputs["l"] and outputs["b"] == inputs["b"]
    assert outputs["s_bytes"] == [{"b64": "w6k="}] * 4 + [{"b64": ""}] * 2
    assert outputs["small"] == inputs["small"]
    # float32 outputs in their shortest decimal form, as the server writes them.
    assert predict(loaded, _columns(f=[0.1]))["outputs"]["f"] == [0.1]


@pytest.mark.parametrize(
    "name, value, message",
    [
        # Numbers: ints take integer literals in range only; floats take numbers only.
        ("i", 3.7, "JSON Value: 3.7 Type: Number is not of expected type: int32"),
        ("i", 3.0, "JSON Value: 3.0 Type: Number is not of expected type: int32"),
        ("i", 2**31, "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
        ("i", -(2**31) - 1, "JSON Value: -2147483649 Type: Number is not of expected type: int32"),
        ("i", True, "JSON Value: true Type: True is not of expected type: int32"),
        ("i", "3", 'JSON Value: "3" Type: String is not of expected type: int32'),
        ("i", None, "JSON Value: null Type: Null is not of expected type: int32"),
        ("i", math.nan, "JSON Value: NaN Type: Number is not of expected type: int32"),
        ("l", 2**63, "JSON Value: 9223372036854775808 Type: Number is not of expected type: int64"),
        ("small", 300, "JSON Value: 300 is out of int8's range [-128, 127]: TF Serving would store it wrapped around."),
        ("f", "NaN", 'JSON Value: "NaN" Type: String is not of expected type: float'),
        ("f", "1.5", 'JSON Value: "1.5" Type: String is not of expected type: float'),
        ("f", False, "JSON Value: false Type: False is not of expected type: float"),
        ("d", "Infinity", 'JSON Value: "Infinity" Type: String is not of expected type: double'),
        ("b", 1, "JSON Value: 1 Type: Number is not of expected type: bool"),
        ("b", "true", 'JSON Value: "true" Type: String is not of expected type: bool'),
        # base64 only for strings, only well formed.
        ("i", {"b64": "AQ=="}, 'JSON Value: {"b64": "AQ=="} Type: Object is not of expected type: int32'),
        ("s", {"b64": "@@@"}, "Unable to base64 decode"),
        ("s", {"b64": "w6k=@"}, "Unable to base64 decode"),
        ("s", {"b64": "Q"}, "Unable to base64 decode"),  # 6 bits left over
        ("s", {"b64": "QQ="}, "Unable to base64 decode"),  # 1 padding character where 2 belong
        ("s", {"b64": "QUJD="}, "Unable to base64 decode"),
        ("s", {"b64": "w6k=w6k="}, "Unable to base64 decode"),
        ("s", {"b64": "w6k-"}, "Unable to base64 decode"),  # the URL-safe alphabet
        ("s", {"b64": 5}, 'JSON Value: {"b64": 5} not formatted correctly for base64 data'),
        ("s", {"b64": "QQ==", "x": 1}, 'JSON Value: {"b64": "QQ==", "x": 1} not formatted correctly for base64 data'),
        ("s", 1, "JSON Value: 1 Type: Number is not of expected type: string"),
        ("s", None, "JSON Value: null Type: Null is not of expected type: string"),
    ],
)
def test_values_the_server_rejects(loaded, name, value, message):
    with pytest.raises(ValueError, match=_literal(message)):
        predict(loaded, _columns(**{name: [value]}))
    # The same value in a row names its element and key.
    rows = [{key: values[0] for key, values in _VALID.items()}, {**{key: values[0] for key, values in _VALID.items()}, name: value}]
    expected = f"Failed to process element: 1 key: {name} of 'instances' list. Error: INVALID_ARGUMENT: {message}"
    with pytest.raises(ValueError, match=_literal(expected)):
        predict(loaded, {"signature_name": "types", "instances": rows})


@pytest.mark.parametrize(
    "body, message",
    [
        # Ragged lists: every list of a level has the first one's length, values sit at one depth.
        ({"inputs": [[1, 2], [3]]}, "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        ({"inputs": [[1], 2]}, "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
        ({"inputs": [[1, [2]]]}, "Encountered list at unexpected level: 2 expected < 2"),
        ({"instances": [[1, 2], [3]]}, "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 but got: 1"),
        ({"instances": [[1, 2, 3, 4], [[1, 2], [3, 4]]]}, "Expecting shape [4] but got: [2,2]"),
        # The request's shape against the signature's.
        ({"inputs": [1, 2]}, "Input 'm' has shape [2], which signature 'matrix' does not take: [?,?]"),
    ],
)
def test_ragged_and_misshapen_tensors(loaded, body, message):
    with pytest.raises(ValueError, match=_literal(message)):
        predict(loaded, {"signature_name": "matrix", **body})


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [], "inputs": {}}, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"),
        ({}, "Missing 'inputs' or 'instances' key"),
        ({"instances": {"text": "a"}}, "Expecting 'instances' to be an list/array"),
        ({"instances": []}, "No values in 'instances' array"),
        ({"instances": ["a", "b"]}, "instances is a plain list, but expecting list of objects as multiple input tensors required"),
        ({"instances": [{"text": "a", "n": 1}, ["b", 2]]}, "Expecting object but got list at item 1 of input list"),
        ({"instances": [{"text": "a"}]}, "Failed to process element: 0 of 'instances' list. JSON object: {\"text\": \"a\"} keys must be equal to: n,text"),
        ({"instances": [{"text": "a", "n": 1, "zz": 1}]}, "Failed to process element: 0 key: zz of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does not have named input: zz"),
        ({"inputs": {"text": ["a"]}}, "Missing named input: n in 'inputs' object."),
        ({"inputs": ["a"]}, "inputs is a plain value/list, but expecting an object as multiple input tensors required"),
        ({"instances": [{"text": "a", "n": 1}], "signature_name": 3}, "'signature_name' key must be a string value."),
        ({"instances": [{"text": "a", "n": 1}], "signature_name": "nope"}, 'Serving signature name: "nope" not found in signature def'),
    ],
)
def test_malformed_bodies(loaded, body, message):
    with pytest.raises(ValueError, match=_literal(message)):
        predict(loaded, body)


def test_single_input_rows_take_values_not_objects(loaded):
    with pytest.raises(ValueError, match="Expecting value/list but got object at item 1 of input list"):
        predict(loaded, {"signature_name": "strings", "instances": ["a", {"s": "b"}]})
    assert predict(loaded, {"signature_name": "strings", "instances": [{"s": "a"}]})["predictions"] == [{"b64": "YQ=="}]


def _literal(text):
    import re

    return re.escape(text)
