"""Answer a TF Serving REST `:predict` body with a loaded SavedModel, the way the server does.

TF Serving cannot run on every machine (it is a separate C++ server, usually a Docker
image). `predict` follows its REST API's rules (tensorflow_serving/util/json_tensor.cc) on a
SavedModel loaded in-process, so the JSON a client would send can be checked anywhere: the row
format (`"instances"`: a list of objects, one per row, stacked along dimension 0, or of plain
values for a signature with one input) and the column format (`"inputs"`: one whole tensor per
input), which JSON values each dtype takes, `{"b64": ...}` for bytes, string outputs decoded as
UTF-8 unless their name ends in `_bytes` (then base64), and the response shapes
(`{"predictions": ...}` for rows, `{"outputs": ...}` for columns).

This module imports only the standard library, NumPy and TensorFlow, so it runs where TF
Serving's own environment does.
"""

import base64
import binascii
import json
import math
import os
import re

import numpy as np
import tensorflow as tf

# The names TensorFlow's DataTypeString gives the dtypes the server's messages quote.
_DTYPE_NAMES = {tf.float32: "float", tf.float64: "double"}
# Integer dtypes: the JSON integers the server takes (rapidjson's IsInt, IsInt64, IsUint,
# IsUint64), and the dtype's own range.
_INT32 = (-(2**31), 2**31 - 1)
_INTEGERS = {
    tf.int32: (_INT32, _INT32),
    tf.int16: (_INT32, (-(2**15), 2**15 - 1)),
    tf.int8: (_INT32, (-(2**7), 2**7 - 1)),
    tf.uint8: (_INT32, (0, 2**8 - 1)),
    tf.int64: ((-(2**63), 2**63 - 1),) * 2,
    tf.uint32: ((0, 2**32 - 1),) * 2,
    tf.uint64: ((0, 2**64 - 1),) * 2,
}
# absl::Base64Unescape: the standard alphabet, whitespace anywhere, then either no padding or
# exactly the padding the length needs (`=` or `.`).
_BASE64_WHITESPACE = re.compile(r"[ \t\n\v\f\r]")
_BASE64 = re.compile(r"^(?P<data>[A-Za-z0-9+/]*)(?P<padding>[=.]*)$")
_MAX_DEBUG_CHARACTERS = 256  # The server truncates the values its messages quote.


def predict(saved_model, body, signature_name="serving_default"):
    """Runs a REST predict body against a SavedModel signature.

    Takes and rejects what TF Serving's REST API does:
        - A float input takes JSON numbers, integers included, and the literals `NaN`,
          `Infinity` and `-Infinity` (the server's parser accepts them); a number beyond
          float32's range becomes infinite, as on the server. Strings such as `"NaN"` or
          `"1.5"` are rejected.
        - An integer input takes JSON integers in the range the server reads them into (32
          bits for int32, int16, int8 and uint8; 64 for int64 and uint64): not `3.7`, not
          `3.0`, not `true`, not `"3"`. A value outside an int16, int8 or uint8 input's own
          range, which the server would store wrapped around, is rejected here.
        - A bool input takes `true` and `false` only; a string input takes JSON strings and
          `{"b64": "..."}` objects (standard base64, padding optional, whitespace ignored), and
          no other dtype takes a `b64` object.
        - Lists are dense: every list of one level as long as the first, every value at the
          same depth; every row of `instances` of one shape.
        - The tensors' shapes must fit the signature's (the server does not check this before
          running the graph).

    Args:
        saved_model: a SavedModel directory or an object from `tf.saved_model.load`.
        body: the request as a dict (the parsed JSON, whose `NaN` and `Infinity` literals
            Python's `json` module reads as floats): `{"instances": [...]}` or
            `{"inputs": ...}`, optionally with `"signature_name"`.
        signature_name: used when the body names none.

    Returns:
        The response dict TF Serving would send.

    Raises:
        ValueError with TF Serving's error message (which the server sends with HTTP 400)
        for a body it rejects. An error the graph raises (`tf.errors.InvalidArgumentError`)
        propagates; the server answers it with HTTP 400 and its message too.
    """
    if isinstance(saved_model, (str, os.PathLike)):
        saved_model = tf.saved_model.load(os.fspath(saved_model))
    if not isinstance(body, dict):
        raise ValueError(f"JSON Value: {_debug(body)} Is not object")
    if "signature_name" in body:
        if not isinstance(body["signature_name"], str):
            raise ValueError(
                f"JSON Value: {_debug(body)} not formatted correctly. 'signature_name' key must be a string value."
            )
        signature_name = body["signature_name"] or "serving_default"
    if signature_name not in saved_model.signatures:
        raise ValueError(f'Serving signature name: "{signature_name}" not found in signature def')
    function = saved_model.signatures[signature_name]
    specs = function.structured_input_signature[1]

    if "instances" in body:
        if "inputs" in body:
            raise ValueError(
                f"JSON Value: {_debug(body)} Not formatted correctly expecting only one of 'inputs' or "
                "'instances' keys to exist "
            )
        arrays = _from_instances(body, specs)
    elif "inputs" in body:
        arrays = _from_inputs(body["inputs"], specs)
    else:
        raise ValueError("Missing 'inputs' or 'instances' key")
    for name, spec in specs.items():
        if not spec.shape.is_compatible_with(arrays[name].shape):
            raise ValueError(
                f"Input {name!r} has shape {_shape_string(arrays[name].shape)}, which signature "
                f"{signature_name!r} does not take: {_shape_string(spec.shape)}"
            )

    tensors = {name: tf.constant(arrays[name], dtype=spec.dtype) for name, spec in specs.items()}
    outputs = {name: value.numpy() for name, value in function(**tensors).items()}
    if "instances" in body:
        batch_size = None
        for name, value in sorted(outputs.items()):
            if value.ndim == 0:
                raise ValueError(f"Tensor name: {name} has no shape information ")
            if batch_size is not None and value.shape[0] != batch_size:
                raise ValueError(
                    f"Tensor name: {name} has inconsistent batch size: {value.shape[0]} expecting: {batch_size}"
                )
            batch_size = value.shape[0]
        predictions = [{name: _to_json(name, value[i]) for name, value in outputs.items()} for i in range(batch_size)]
        if len(outputs) == 1:
            predictions = [next(iter(row.values())) for row in predictions]
        return {"predictions": predictions}
    result = {name: _to_json(name, value) for name, value in outputs.items()}
    return {"outputs": result if len(result) > 1 else next(iter(result.values()))}


# ------------------------------------------------------------------- requests


def _from_instances(body, specs):
    """The row format: `{input: array}` with the rows stacked along dimension 0."""
    rows = body["instances"]
    if not isinstance(rows, list):
        raise ValueError(f"JSON Value: {_debug(body)} Expecting 'instances' to be an list/array")
    if not rows:
        raise ValueError(f"JSON Value: {_debug(body)} No values in 'instances' array")
    if len(specs) > 1 and not _is_row_object(rows[0]):
        raise ValueError(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as per "
            "tensorinfo_map"
        )
    objects = _is_row_object(rows[0])
    values, shapes = {}, {}

    def add(name, item):
        if name not in specs:
            raise ValueError(f"JSON object: does not have named input: {name}")
        shape, flat = _dense(item, specs[name].dtype)
        if name not in shapes:
            shapes[name], values[name] = shape, []
        elif len(flat) != math.prod(shapes[name]):
            raise ValueError(f"Expecting tensor size: {math.prod(shapes[name])} but got: {len(flat)}")
        elif shape != shapes[name]:
            raise ValueError(f"Expecting shape {_shape_string(shapes[name])} but got: {_shape_string(shape)}")
        values[name].extend(flat)

    for index, row in enumerate(rows):
        if objects:
            if not _is_row_object(row):
                raise ValueError(f"Expecting object but got list at item {index} of input list")
            for name, item in row.items():
                try:
                    add(name, item)
                except ValueError as error:
                    raise ValueError(
                        f"Failed to process element: {index} key: {name} of 'instances' list. Error: "
                        f"INVALID_ARGUMENT: {error}"
                    ) from None
            if set(row) != set(specs):
                raise ValueError(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {_debug(row)} keys "
                    f"must be equal to: {','.join(sorted(specs))}"
                )
        else:
            if _is_row_object(row):
                raise ValueError(f"Expecting value/list but got object at item {index} of input list")
            try:
                add(next(iter(specs)), row)
            except ValueError as error:
                raise ValueError(
                    f"Failed to process element: {index} of 'instances' list. Error: INVALID_ARGUMENT: {error}"
                ) from None
    return {name: _array(values[name], [len(rows), *shapes[name]], specs[name].dtype) for name in specs}


def _from_inputs(columns, specs):
    """The column format: `{input: array}`, each input a whole tensor."""
    if not isinstance(columns, dict) or _is_base64_object(columns):
        if len(specs) > 1:
            raise ValueError(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
                "tensorinfo_map"
            )
        columns = {next(iter(specs)): columns}
    arrays = {}
    for name in sorted(specs):  # Other keys are ignored, as the server ignores them.
        if name not in columns:
            raise ValueError(f"Missing named input: {name} in 'inputs' object.")
        shape, flat = _dense(columns[name], specs[name].dtype)
        arrays[name] = _array(flat, shape, specs[name].dtype)
    return arrays


def _dense(value, dtype):
    """`(shape, flat values)` of a JSON value: its shape read along the first elements, each
    list checked against it."""
    shape, first = [], value
    while isinstance(first, list):
        shape.append(len(first))
        if not first:
            break
        first = first[0]
    flat = []

    def fill(item, level):
        if not isinstance(item, list):
            if level != len(shape):
                raise ValueError(
                    f"JSON Value: {_debug(item)} found at incorrect level: {level + 1} in the JSON DOM. "
                    f"Expected at level: {len(shape)}"
                )
            flat.append(_scalar(item, dtype))
            return
        if level >= len(shape):
            raise ValueError(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
        if len(item) != shape[level]:
            raise ValueError(
                f"Encountered list at unexpected size: {len(item)} at level: {level} expected size: {shape[level]}"
            )
        for element in item:
            fill(element, level + 1)

    fill(value, 0)
    return shape, flat


def _scalar(value, dtype):
    """One JSON value as a value of `dtype`, or the server's error."""
    if isinstance(value, dict):
        if dtype != tf.string:
            raise _type_error(value, dtype)
        if not _is_base64_object(value):
            raise ValueError(f"JSON Value: {_debug(value)} not formatted correctly for base64 data")
        return _base64_decode(value["b64"])
    if dtype == tf.string:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype in (tf.float32, tf.float64):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, dtype)
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"JSON Value: {_debug(value)} Number too big to be stored in double.") from None
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype in _INTEGERS:
        (low, high), (dtype_low, dtype_high) = _INTEGERS[dtype]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _type_error(value, dtype)
        if not dtype_low <= value <= dtype_high:
            raise ValueError(
                f"JSON Value: {value} is out of {dtype.name}'s range [{dtype_low}, {dtype_high}]: TF Serving would "
                "store it wrapped around."
            )
        return value
    raise ValueError(f"Conversion of JSON Value: {_debug(value)} to type: {_dtype_name(dtype)} (unimplemented)")


def _array(flat, shape, dtype):
    if dtype == tf.string:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        with np.errstate(over="ignore"):  # A double beyond float32's range becomes infinite, as on the server.
            array = np.array(flat, dtype=dtype.as_numpy_dtype)
    return array.reshape(shape)


def _base64_decode(text):
    """Decodes base64 as the server's absl::Base64Unescape does, or raises its error."""
    match = _BASE64.match(_BASE64_WHITESPACE.sub("", text))
    if match:
        data, padding = match.group("data"), match.group("padding")
        needed = {0: 0, 2: 2, 3: 1}.get(len(data) % 4)
        if needed is not None and len(padding) in (0, needed):
            try:
                return base64.b64decode(data + "=" * needed, validate=True)
            except binascii.Error:
                pass
    raise ValueError("Unable to base64 decode")


def _is_base64_object(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_row_object(value):
    return isinstance(value, dict) and not _is_base64_object(value)


def _type_error(value, dtype):
    return ValueError(f"JSON Value: {_debug(value)} Type: {_json_type(value)} is not of expected type: {_dtype_name(dtype)}")


def _json_type(value):
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _dtype_name(dtype):
    return _DTYPE_NAMES.get(dtype, dtype.name)


def _debug(value):
    """A JSON value as the server's messages quote it (truncated)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_DEBUG_CHARACTERS else text[:_MAX_DEBUG_CHARACTERS] + "..."


def _shape_string(shape):
    return "[" + ",".join("?" if size is None else str(size) for size in list(shape)) + "]"


# ------------------------------------------------------------------- responses


def _to_json(name, value):
    if isinstance(value, np.ndarray):
        return [_to_json(name, item) for item in value]
    if isinstance(value, bytes):
        if name.endswith("_bytes"):
            return {"b64": base64.b64encode(value).decode("ascii")}
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"Output {name!r} is not valid UTF-8, which a JSON response cannot carry: TF Serving "
                "base64-encodes only outputs whose name ends in '_bytes'."
            ) from None
    if isinstance(value, np.float32):
        # The server writes a float32 in its shortest round-trip decimal form (0.1, not
        # 0.10000000149011612).
        return float(str(value))
    return value.item() if hasattr(value, "item") else value
