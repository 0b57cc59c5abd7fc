"""TF Serving's `--model_config_file` (`models.config`), shared by every export beside it.

Imports no TensorFlow: only the standard library and the protobuf messages of
`tensorflow-serving-api`.
"""

import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


def update_models_config(config_path, model_name, base_path, num_versions=1):
    """Adds or replaces `model_name` in a TF Serving `--model_config_file`.

    The file is a `ModelServerConfig` text proto; other models in it are kept. It is
    rewritten atomically (written beside, then renamed).

    Args:
        config_path: e.g. `saved_models/models.config`.
        model_name: the name clients ask for (`/v1/models/<name>:predict`).
        base_path: the base path as the server sees it (e.g. `/models/<name>` inside the
            `tensorflow/serving` container), without a version.
        num_versions: the server serves the latest `num_versions` versions.

    Returns:
        The parsed `ModelServerConfig`.
    """
    config = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as file:
            try:
                text_format.Parse(file.read(), config)
            except text_format.ParseError as error:
                raise ValueError(f"{config_path} is not a TF Serving model config (ModelServerConfig): {error}") from None
    models = config.model_config_list.config
    kept = [model for model in models if model.name != model_name]
    del models[:]
    models.extend(kept)
    entry = models.add(name=model_name, base_path=base_path, model_platform="tensorflow")
    entry.model_version_policy.latest.num_versions = num_versions
    os.makedirs(os.path.dirname(os.path.abspath(config_path)), exist_ok=True)
    temporary = f"{config_path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text_format.MessageToString(config))
    os.replace(temporary, config_path)
    return config
