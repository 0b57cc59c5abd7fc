"""Answer a TF Serving REST `:predict` body with a loaded SavedModel, the way the server does.

TF Serving cannot run on every machine (it is a separate C++ server, usually a Docker
image). `predict` follows its REST API's rules on a SavedModel loaded in-process, so the JSON
a client would send can be checked anywhere: the row format (`"instances"`: a list of
objects, one per row, stacked along dimension 0) and the column format (`"inputs"`: one
whole tensor per input), `{"b64": ...}` for bytes, string outputs decoded as UTF-8 unless
their name ends in `_bytes` (then base64), and the response shapes
(`{"predictions": ...}` for rows, `{"outputs": ...}` for columns).
"""

import base64

import numpy as np
import tensorflow as tf


def predict(saved_model, body, signature_name="serving_default"):
    """Runs a REST predict body against a SavedModel signature.

    Args:
        saved_model: a SavedModel directory or an object from `tf.saved_model.load`.
        body: the request as a dict (the parsed JSON): `{"instances": [...]}` or
            `{"inputs": ...}`, optionally with `"signature_name"`.
        signature_name: used when the body names none.

    Returns:
        The response dict TF Serving would send.

    Raises:
        ValueError with TF Serving's meaning for a malformed body (both or neither of
        `instances`/`inputs`, a missing input, rows of different inputs).
    """
    if isinstance(saved_model, str):
        saved_model = tf.saved_model.load(saved_model)
    signature_name = body.get("signature_name", signature_name)
    if signature_name not in saved_model.signatures:
        raise ValueError(f"Serving signature name: {signature_name!r} not found in signature def")
    function = saved_model.signatures[signature_name]
    specs = function.structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise ValueError('JSON object: must contain exactly one of "instances" or "inputs"')

    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise ValueError('"instances" must be a JSON list')
        if len(specs) == 1 and not (rows and isinstance(rows[0], dict)):
            rows = [{next(iter(specs)): row} for row in rows]
        columns = {}
        for name in specs:
            missing = [i for i, row in enumerate(rows) if name not in row]
            if missing:
                raise ValueError(f"Missing input {name!r} in instance {missing[0]}")
            columns[name] = [row[name] for row in rows]
        extra = {key for row in rows for key in row} - set(specs)
        if extra:
            raise ValueError(f"Unknown inputs {sorted(extra)} for signature {signature_name!r}")
    else:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            columns = {next(iter(specs)): columns}
        missing = set(specs) - set(columns)
        if missing:
            raise ValueError(f"Missing inputs {sorted(missing)} for signature {signature_name!r}")

    tensors = {name: _to_tensor(columns[name], spec) for name, spec in specs.items()}
    outputs = {name: value.numpy() for name, value in function(**tensors).items()}
    if "instances" in body:
        count = len(rows)
        predictions = [{name: _to_json(name, value[i]) for name, value in outputs.items()} for i in range(count)]
        if len(outputs) == 1:
            predictions = [next(iter(row.values())) for row in predictions]
        return {"predictions": predictions}
    result = {name: _to_json(name, value) for name, value in outputs.items()}
    return {"outputs": result if len(result) > 1 else next(iter(result.values()))}


def _to_tensor(value, spec):
    if spec.dtype == tf.string:
        value = _decode_strings(value)
        array = np.array(value, dtype=object)
    else:
        array = np.array(value, dtype=spec.dtype.as_numpy_dtype)
    return tf.constant(array, dtype=spec.dtype)


def _decode_strings(value):
    if isinstance(value, list):
        return [_decode_strings(item) for item in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError(f"Expected a string or {{'b64': ...}} for a string input. Received: {value!r}")


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
    return value.item() if hasattr(value, "item") else value
