"""The decode loop itself: the cached decoder, graphs without `Xla*` ops, per-row options."""

import gc
import weakref

import keras
import numpy as np
import pytest
from keras import ops

from tests.generation.conftest import PROMPTS
from tfllm.generation import GenerationConfig, GPTDecoder, decode, generate
from tfllm.models import GPT

TENSORFLOW = keras.config.backend() == "tensorflow"
tensorflow_only = pytest.mark.skipif(not TENSORFLOW, reason="TensorFlow graphs")


def decoder_logits(model, ids, xla, prefill=3):
    """Logits of every position of `ids` through `GPTDecoder`: a prefill of `prefill` tokens
    (called once per position, each reading its logits at that column), then one token a step."""
    rows = ids.shape[0]
    decoder = GPTDecoder(model, xla=xla)
    kernels = decoder.kernels()
    start = np.zeros((rows,), "int32")
    logits = []
    for column in range(prefill):
        caches = decoder.empty_caches(rows=rows, length=ids.shape[1] + 3)
        at = np.full((rows,), column, "int32")
        step, caches = decoder(ids[:, :prefill], caches, start, kernels, logits_at=at)
        logits.append(ops.convert_to_numpy(step))
    for position in range(prefill, ids.shape[1]):
        step, caches = decoder(ids[:, position : position + 1], caches, np.full((rows,), position, "int32"), kernels)
        logits.append(ops.convert_to_numpy(step))
    return np.stack(logits, axis=1)


@pytest.mark.parametrize("rows", [1, 2])
@pytest.mark.parametrize("xla", [True, False], ids=["xla", "graph"])
def test_decoder_prefill_and_steps_equal_the_full_forward_pass(gpt, xla, rows):
    # Without XLA one-token steps write the caches by select, and for one row compute the
    # attention by sums: every path must give the full pass's logits.
    ids = np.array([[5, 9, 300, 41, 7], [8, 2, 77, 6, 410]][:rows], "int32")
    expected = ops.convert_to_numpy(gpt({"token_ids": ids, "padding_mask": np.ones_like(ids)}))
    np.testing.assert_allclose(decoder_logits(gpt, ids, xla), expected, atol=1e-5)


def composed_language_model(vocabulary_size=64, hidden_dim=16):
    """A causal language model composed from tfllm's layers, as in README's tour."""
    from tfllm.layers import PositionalEmbedding, ReversibleEmbedding, TransformerBlock

    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    embedding = ReversibleEmbedding(vocabulary_size, hidden_dim)
    x = embedding(token_ids)
    x = x + PositionalEmbedding(sequence_length=24, kind="sinusoidal")(x)
    for _ in range(2):
        x = TransformerBlock(num_heads=2, intermediate_dim=32, normalize_first=True, causal=True)(
            x, padding_mask=padding_mask
        )
    logits = embedding(keras.layers.LayerNormalization()(x), reverse=True)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, logits)


@pytest.mark.parametrize("xla", [True, False], ids=["xla", "graph"])
def test_a_composed_model_and_a_nested_gpt_decode_like_their_full_pass(gpt, xla):
    keras.utils.set_random_seed(1)
    composed = composed_language_model()
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in ("token_ids", "padding_mask")}
    nested = keras.Model(inputs, gpt(inputs))  # a GPT inside another Functional model
    ids = np.array([[5, 9, 30, 41, 7, 2], [8, 2, 17, 6, 40, 1]], "int32")
    for model in (composed, nested):
        expected = ops.convert_to_numpy(model({"token_ids": ids, "padding_mask": np.ones_like(ids)}))
        np.testing.assert_allclose(decoder_logits(model, ids, xla), expected, atol=1e-5)
    decoder = GPTDecoder(composed)
    assert decoder.vocabulary_size == 64 and decoder.max_sequence_length == 24
    assert len(decoder.blocks) == 2


@pytest.mark.parametrize("activations", [False, True], ids=["weight-only", "int8-products"])
def test_an_int8_gpt_decodes_like_its_full_pass_and_keeps_its_int8_kernels(activations):
    # Weight-only int8 layers read kernels cast to float once per call, not once per step:
    # the logits must still be the quantized model's own, and the model must come back as it was.
    from tfllm.compression import quantize

    keras.utils.set_random_seed(3)
    model = quantize(GPT("gpt-test"), activations=activations)
    ids = np.array([[5, 9, 300, 41, 7], [8, 2, 77, 6, 410]], "int32")
    expected = ops.convert_to_numpy(model({"token_ids": ids, "padding_mask": np.ones_like(ids)}))
    decoder = GPTDecoder(model, xla=False)
    assert (len(decoder._int8) > 0) != activations
    np.testing.assert_allclose(decoder_logits(model, ids, xla=False), expected, atol=1e-4)
    dense = (keras.layers.Dense, keras.layers.EinsumDense)
    kernels = [layer._kernel for layer in model._flatten_layers() if isinstance(layer, dense)]
    assert kernels and all(isinstance(kernel, keras.Variable) and kernel.dtype == "int8" for kernel in kernels)


def test_decoder_says_what_a_model_lacks():
    from tfllm.layers import TransformerBlock
    from tfllm.models import BERT

    model = GPT("gpt-test")
    model.transformer_blocks[1].causal = False
    with pytest.raises(ValueError, match="causal=False"):
        GPTDecoder(model)
    with pytest.raises(ValueError, match="segment_ids"):
        GPTDecoder(BERT("bert-test"))
    ids = keras.Input((None,), dtype="int32", name="ids")
    dense = keras.Model({"ids": ids}, keras.layers.Dense(8)(keras.layers.Embedding(8, 4)(ids)))
    with pytest.raises(ValueError, match="no input named 'token_ids'"):
        GPTDecoder(dense)
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    no_blocks = keras.Model({"token_ids": token_ids}, keras.layers.Dense(8)(keras.layers.Embedding(8, 4)(token_ids)))
    with pytest.raises(ValueError, match="no `tfllm.layers.TransformerBlock`"):
        GPTDecoder(no_blocks)
    x = keras.layers.Embedding(8, 4)(token_ids)
    pooled = TransformerBlock(num_heads=2, intermediate_dim=8, causal=True)(x)[:, 0]
    with pytest.raises(ValueError, match="logits"):
        GPTDecoder(keras.Model({"token_ids": token_ids}, pooled))


def test_mixed_bfloat16_model_generates():
    model = GPT("gpt-test", dtype="mixed_bfloat16")
    decoder = GPTDecoder(model)
    assert keras.backend.standardize_dtype(decoder.empty_caches(1, 4)[0][0].dtype) == "bfloat16"
    output = generate(model, PROMPTS, 4, jit_compile=False)
    assert output.shape == (3, 9) and output.dtype == np.int32
    assert ((output >= 0) & (output < 512)).all()


def test_cached_functions_do_not_keep_the_model_alive():
    model = GPT("gpt-test")
    generate(model, [[1, 2]], 2, jit_compile=False)
    reference = weakref.ref(model)
    del model
    gc.collect()
    assert reference() is None


def graph_op_types(concrete_function):
    """Every op type in a traced function, its loop bodies and other nested functions included."""
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def _export_style_function(model, max_new_tokens, num_candidates=None, **config):
    """`decode` in a plain `tf.function` with per-row options and unknown batch and length,
    as a TF Serving export would embed it."""
    import tensorflow as tf

    config = GenerationConfig(**config)

    def serve(token_ids, lengths, temperature, top_k, top_p, seed):
        return decode(
            model,
            token_ids,
            lengths,
            max_new_tokens,
            config,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            num_candidates=num_candidates,
            xla=False,
        )

    row = lambda dtype: tf.TensorSpec((None,), dtype)  # noqa: E731
    return tf.function(serve).get_concrete_function(
        tf.TensorSpec((None, None), tf.int32), row(tf.int32), row(tf.float32), row(tf.int32), row(tf.float32), row(tf.int32)
    )


@tensorflow_only
@pytest.mark.parametrize(
    "static",
    [
        dict(sampler="greedy", stop_token_ids=(2,)),
        dict(sampler="random", num_candidates=50, repetition_penalty=1.2, no_repeat_ngram_size=3),
        dict(sampler="beam", num_beams=3, num_return_sequences=2, stop_token_ids=(2,), no_repeat_ngram_size=2),
    ],
    ids=["greedy", "random", "beam"],
)
def test_the_graph_without_xla_has_no_xla_ops_and_one_loop(gpt, static):
    types = graph_op_types(_export_style_function(gpt, 6, **static))
    assert not [op for op in types if op.startswith("Xla")]
    assert types & {"While", "StatelessWhile"}
    assert "PyFunc" not in types and "EagerPyFunc" not in types


@tensorflow_only
def test_the_op_check_catches_slice_update():
    """keras-hub's cache writes (`ops.slice_update`) are what the check above must catch."""
    import tensorflow as tf

    function = tf.function(lambda x: ops.slice_update(x, (0, 1), ops.ones((2, 1))))
    types = graph_op_types(function.get_concrete_function(tf.TensorSpec((2, 4), tf.float32)))
    assert [op for op in types if op.startswith("Xla")]


@tensorflow_only
def test_export_style_graph_serves_any_batch_with_options_per_row(gpt):
    serve = _export_style_function(gpt, 6, sampler="random", num_candidates=40)
    longest = max(map(len, PROMPTS))
    ids = np.array([prompt + [0] * (longest - len(prompt)) for prompt in PROMPTS], "int32")
    lengths = np.array([len(prompt) for prompt in PROMPTS], "int32")
    temperature = np.array([0.5, 1.0, 2.0], "float32")
    top_k = np.array([1, 0, 40], "int32")
    top_p = np.array([1.0, 0.7, 0.9], "float32")
    seed = np.array([1, 2, 3], "int32")
    batch = serve(ids, lengths, temperature, top_k, top_p, seed).numpy()
    assert batch.shape == (3, longest + 6)
    # Each row's result depends only on its own prompt, options and seed.
    for index, prompt in enumerate(PROMPTS):
        alone = serve(
            np.array([prompt], "int32"),
            lengths[index : index + 1],
            temperature[index : index + 1],
            top_k[index : index + 1],
            top_p[index : index + 1],
            seed[index : index + 1],
        ).numpy()
        np.testing.assert_array_equal(batch[index, : len(prompt) + 6], alone[0])
    # top_k=1 is greedy.
    np.testing.assert_array_equal(batch[0, : len(PROMPTS[0]) + 6], generate(gpt, PROMPTS[:1], 6, jit_compile=False)[0])


def test_the_earlier_keyword_form_still_works_with_a_deprecation_warning(gpt):
    ids = np.array([[5, 6, 7], [8, 9, 0]], "int32")
    lengths = np.array([3, 2], "int32")
    config = GenerationConfig(sampler="beam", num_beams=2, stop_token_ids=(3,))
    expected = ops.convert_to_numpy(decode(gpt, ids, lengths, 4, config))
    with pytest.warns(DeprecationWarning, match="GenerationConfig"):
        legacy = decode(gpt, ids, lengths, 4, "beam", num_beams=2, stop_token_ids=(3,), no_repeat_ngram_size=0)
    np.testing.assert_array_equal(ops.convert_to_numpy(legacy), expected)


def test_per_row_options_must_match_the_batch(gpt):
    ids = np.array([[5, 6, 7], [8, 9, 0], [1, 2, 3]], "int32")
    lengths = np.array([3, 2, 3], "int32")
    config = GenerationConfig(sampler="random")
    for name, value in [("temperature", np.ones(2, "float32")), ("seed", np.zeros((3, 1), "int32"))]:
        with pytest.raises(ValueError, match=rf"`{name}` must be a scalar or hold one value per prompt \(3\)"):
            decode(gpt, ids, lengths, 2, config, **{name: value})
    with pytest.raises(ValueError, match="`lengths` must be"):
        decode(gpt, ids, lengths[:2], 2)
    # A scalar, or one value per prompt, is fine.
    assert ops.shape(decode(gpt, ids, lengths, 2, config, temperature=0.5, seed=np.arange(3, dtype="int32"))) == (3, 5)


@pytest.mark.parametrize(
    "options, name",
    [
        (dict(sampler="random", temperature=float("nan")), "temperature"),
        (dict(sampler="random", temperature=float("inf")), "temperature"),
        (dict(sampler="beam", length_penalty=float("nan")), "length_penalty"),
        (dict(repetition_penalty=float("inf")), "repetition_penalty"),
        (dict(sampler="top_p", top_p=float("nan")), "top_p"),
    ],
)
def test_non_finite_options_are_refused(options, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        GenerationConfig(**options)
