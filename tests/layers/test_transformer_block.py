import keras
import numpy as np
import pytest
from keras import ops

from tests.helpers import run_layer_test, to_numpy
from tfllm.layers import TransformerBlock

BATCH, SEQ, HIDDEN, HEADS = 2, 7, 16, 4


def random_inputs(batch=BATCH, seq=SEQ, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, seq, HIDDEN)).astype("float32")


@pytest.mark.parametrize("normalize_first, causal", [(True, True), (False, False)])
def test_layer_contract(normalize_first, causal, tmp_path):
    run_layer_test(
        TransformerBlock,
        init_kwargs=dict(
            num_heads=HEADS,
            intermediate_dim=32,
            dropout=0.1,
            activation="gelu_approximate",
            normalize_first=normalize_first,
            causal=causal,
        ),
        input_data={"inputs": random_inputs(), "padding_mask": np.ones((BATCH, SEQ), "int32")},
        expected_output_shape=(BATCH, SEQ, HIDDEN),
        # qkv, attention output, two feed-forward denses (kernel + bias each), two norms (gamma + beta).
        expected_num_trainable_weights=12,
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("normalize_first", [True, False])
@pytest.mark.parametrize("causal", [True, False])
def test_padding_leaves_real_positions_unchanged(normalize_first, causal):
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, normalize_first=normalize_first, causal=causal)
    x = random_inputs(batch=1)
    reference = to_numpy(block(x, padding_mask=np.ones((1, SEQ), "int32")))
    # Three padded positions at the end, holding garbage that must not leak in.
    padded = np.concatenate([x, 100 * random_inputs(batch=1, seq=3, seed=1)], axis=1)
    mask = np.array([[1] * SEQ + [0] * 3], "int32")
    output = to_numpy(block(padded, padding_mask=mask))
    np.testing.assert_allclose(output[:, :SEQ], reference, atol=1e-5)
    if not causal:
        # Bidirectional: padding anywhere, even first, is invisible.
        padded = np.concatenate([100 * random_inputs(batch=1, seq=2, seed=2), x], axis=1)
        mask = np.array([[0, 0] + [1] * SEQ], "int32")
        np.testing.assert_allclose(to_numpy(block(padded, padding_mask=mask))[:, 2:], reference, atol=1e-5)


def test_padding_changes_outputs_when_unmasked():
    """The padding test above can fail: without the mask the garbage does leak in."""
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32)
    x = random_inputs(batch=1)
    padded = np.concatenate([x, 100 * random_inputs(batch=1, seq=3, seed=1)], axis=1)
    assert not np.allclose(to_numpy(block(padded))[:, :SEQ], to_numpy(block(x)), atol=1e-3)


def test_fully_padded_row_is_finite():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, causal=True)
    output = to_numpy(block(random_inputs(), padding_mask=np.zeros((BATCH, SEQ), "int32")))
    assert np.all(np.isfinite(output))


@pytest.mark.parametrize("normalize_first", [True, False])
def test_causal_output_ignores_the_future(normalize_first):
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, normalize_first=normalize_first, causal=True)
    x = random_inputs()
    changed = x.copy()
    changed[:, 4:] = random_inputs(seq=SEQ - 4, seed=3)
    a, b = to_numpy(block(x)), to_numpy(block(changed))
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-5)
    assert not np.allclose(a[:, 4:], b[:, 4:], atol=1e-3)


def test_bidirectional_output_sees_the_future():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, causal=False)
    x = random_inputs()
    changed = x.copy()
    changed[:, -1] += 1.0
    assert not np.allclose(to_numpy(block(x))[:, 0], to_numpy(block(changed))[:, 0], atol=1e-4)


def twin_of(block, **changes):
    """A copy of `block` with config `changes` and the same weights (both built on 10 tokens)."""
    twin = TransformerBlock.from_config({**block.get_config(), **changes})
    x = random_inputs(seq=10)
    block(x)
    twin(x)
    twin.set_weights(block.get_weights())
    return twin


def twin_blocks(block_size, **kwargs):
    """The same causal block computed in query blocks of `block_size` and as one full square."""
    blocked = TransformerBlock(
        num_heads=HEADS, intermediate_dim=32, causal=True, attention_block_size=block_size, **kwargs
    )
    return blocked, twin_of(blocked, attention_block_size=None)


def test_query_blocks_cover_a_causal_sequence():
    blocked, square = twin_blocks(3)
    assert blocked._query_blocks(10, 10) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert blocked._query_blocks(3, 3) is None  # one block: the square itself
    assert blocked._query_blocks(None, None) is None  # length unknown when traced
    assert blocked._query_blocks(1, 10) is None  # queries of the first positions only
    assert square._query_blocks(10, 10) is None
    bidirectional = TransformerBlock(num_heads=HEADS, intermediate_dim=32, attention_block_size=3)
    assert bidirectional._query_blocks(10, 10) is None


def padding_and_attention_masks(seed, seq=10):
    """Call arguments with left and right padding and a random attention mask (each token sees
    itself), and the boolean positions of the real tokens."""
    padding_mask = np.ones((BATCH, seq), "int32")
    padding_mask[0, seq - 2 :] = 0
    padding_mask[1, :2] = 0
    attention_mask = np.random.default_rng(seed).integers(0, 2, (BATCH, seq, seq)).astype("int32")
    attention_mask[:, np.arange(seq), np.arange(seq)] = 1
    return dict(padding_mask=padding_mask, attention_mask=attention_mask), padding_mask.astype(bool)


@pytest.mark.parametrize("normalize_first", [True, False])
def test_blocked_causal_attention_equals_the_full_square(normalize_first):
    blocked, square = twin_blocks(3, normalize_first=normalize_first)
    x = random_inputs(seq=10)
    np.testing.assert_allclose(to_numpy(blocked(x)), to_numpy(square(x)), atol=1e-5)
    # With padding (left and right) and an attention mask, sliced per block.
    kwargs, real = padding_and_attention_masks(seed=4)
    np.testing.assert_allclose(to_numpy(blocked(x, **kwargs))[real], to_numpy(square(x, **kwargs))[real], atol=1e-5)


def input_and_weight_gradients(block, x):
    """Gradients of a weighted sum of the block's output to its input and its weights."""
    weights = np.random.default_rng(5).normal(size=(BATCH, 10, HIDDEN)).astype("float32")
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(block(x) * weights)
        gradients = tape.gradient(loss, [x] + block.trainable_variables)
    elif backend == "jax":
        import jax

        def loss(x, values):
            outputs, _ = block.stateless_call(values, [], x)
            return (outputs * weights).sum()

        values = [v.value for v in block.trainable_variables]
        gradients = jax.grad(loss, argnums=(0, 1))(x, values)
        gradients = [gradients[0], *gradients[1]]
    else:
        pytest.skip(f"no gradient helper for the {backend} backend")
    return [to_numpy(g) for g in gradients]


def test_blocked_causal_attention_has_the_full_square_gradients():
    blocked, square = twin_blocks(4)
    x = random_inputs(seq=10)
    for a, b in zip(input_and_weight_gradients(blocked, x), input_and_weight_gradients(square, x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("normalize_first, causal", [(True, True), (False, False), (False, True)])
@pytest.mark.parametrize("output_length", [1, 4, SEQ])
def test_output_length_gives_the_first_positions_of_the_full_call(normalize_first, causal, output_length):
    block = TransformerBlock(
        num_heads=HEADS, intermediate_dim=32, normalize_first=normalize_first, causal=causal, attention_block_size=2
    )
    x = random_inputs()
    padding_mask = np.ones((BATCH, SEQ), "int32")
    padding_mask[0, 5:] = 0
    attention_mask = np.random.default_rng(6).integers(0, 2, (BATCH, SEQ, SEQ)).astype("int32")
    attention_mask[:, np.arange(SEQ), np.arange(SEQ)] = 1
    kwargs = dict(padding_mask=padding_mask, attention_mask=attention_mask)
    full = to_numpy(block(x, **kwargs))
    first = to_numpy(block(x, output_length=output_length, **kwargs))
    assert first.shape == (BATCH, output_length, HIDDEN)
    # Keys and values still cover every position: the later tokens change the outputs.
    np.testing.assert_allclose(first, full[:, :output_length], atol=1e-5)
    n = output_length
    alone = to_numpy(block(x[:, :n], padding_mask=padding_mask[:, :n], attention_mask=attention_mask[:, :n, :n]))
    if output_length < SEQ and not causal:
        assert not np.allclose(first, alone, atol=1e-3)


def test_output_length_above_the_sequence_gives_every_position():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32)
    x = random_inputs()
    np.testing.assert_allclose(to_numpy(block(x, output_length=SEQ + 5)), to_numpy(block(x)), atol=1e-6)


def test_output_length_is_checked():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, causal=True)
    with pytest.raises(ValueError, match="output_length"):
        block(random_inputs(), output_length=0)
    with pytest.raises(ValueError, match="output_length.*cache"):
        block(random_inputs(), output_length=1, cache=empty_cache(block, BATCH, SEQ), cache_index=0)


def empty_cache(block, batch, max_length):
    if not block.built:
        block.build((None, None, HIDDEN))
    return block.empty_cache(batch, max_length)


def test_empty_cache_layouts():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, causal=True)
    with pytest.raises(ValueError, match="built"):
        block.empty_cache(BATCH, SEQ)
    keys, values = empty_cache(block, BATCH, SEQ)
    head_dim = HIDDEN // HEADS
    # Keys transposed for the query-key product, values as the probability-value product reads them.
    assert tuple(keys.shape) == (BATCH, HEADS, head_dim, SEQ)
    assert tuple(values.shape) == (BATCH, HEADS, SEQ, head_dim)


@pytest.mark.parametrize("normalize_first", [True, False])
@pytest.mark.parametrize("batch, xla", [(BATCH, True), (BATCH, False), (1, False)])
def test_cached_decoding_equals_full_pass(normalize_first, batch, xla):
    """The scatter path (`xla=True`), the select path and, for one row, the element-wise
    products (`xla=False`) all give the full pass's outputs and caches."""
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, normalize_first=normalize_first, causal=True)
    x = random_inputs(batch=batch)
    full = to_numpy(block(x))

    max_length = SEQ + 3
    prompt = 3
    output, cache = block(x[:, :prompt], cache=empty_cache(block, batch, max_length), cache_index=0, xla=xla)
    steps = [to_numpy(output)]
    for index in range(prompt, SEQ):
        output, cache = block(x[:, index : index + 1], cache=cache, cache_index=index, xla=xla)
        steps.append(to_numpy(output))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)

    # The cache holds every position's key and value, and zeros where nothing was written.
    keys, values = (to_numpy(part) for part in cache)
    qkv = to_numpy(block.qkv_dense(block.attention_layer_norm(x) if normalize_first else x))
    head_dim = HIDDEN // HEADS
    expected_keys = qkv[..., HIDDEN : 2 * HIDDEN].reshape(batch, SEQ, HEADS, head_dim)
    expected_values = qkv[..., 2 * HIDDEN :].reshape(batch, SEQ, HEADS, head_dim)
    np.testing.assert_allclose(keys[..., :SEQ], expected_keys.transpose(0, 2, 3, 1), atol=1e-5)
    np.testing.assert_allclose(values[:, :, :SEQ], expected_values.transpose(0, 2, 1, 3), atol=1e-5)
    assert not keys[..., SEQ:].any() and not values[:, :, SEQ:].any()


def test_cached_decoding_with_a_position_per_row():
    """Rows at different positions (prompts of different lengths) decode in one call."""
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, normalize_first=True, causal=True)
    x = random_inputs()
    full = to_numpy(block(x))
    lengths = np.array([2, 5], "int32")
    # Prefill both rows over 5 positions; row 0's positions 2..4 are overwritten later.
    _, cache = block(x[:, :5], cache=empty_cache(block, BATCH, SEQ), cache_index=0)
    outputs = {0: [], 1: []}
    for step in range(SEQ - 5):
        positions = lengths + step
        new = np.stack([x[row, positions[row]] for row in range(BATCH)])[:, None]
        output, cache = block(new, cache=cache, cache_index=positions)
        for row in range(BATCH):
            outputs[row].append(to_numpy(output)[row, 0])
    for row in range(BATCH):
        expected = full[row, lengths[row] : lengths[row] + SEQ - 5]
        np.testing.assert_allclose(np.stack(outputs[row]), expected, atol=1e-5)


def test_bidirectional_cache_sees_every_written_slot():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, causal=False)
    x = random_inputs()
    output, _ = block(x, cache=empty_cache(block, BATCH, SEQ + 4), cache_index=0)
    np.testing.assert_allclose(to_numpy(output), to_numpy(block(x)), atol=1e-5)


def test_cache_requires_index():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, causal=True)
    with pytest.raises(ValueError, match="cache_index"):
        block(random_inputs(), cache=empty_cache(block, BATCH, SEQ))


def test_attention_mask_is_applied():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32)
    x = random_inputs()
    # Each position attending only to itself equals a sequence of length one.
    eye = np.broadcast_to(np.eye(SEQ, dtype="int32"), (BATCH, SEQ, SEQ))
    output = to_numpy(block(x, attention_mask=eye))
    alone = to_numpy(block(x[:, 3:4]))
    np.testing.assert_allclose(output[:, 3:4], alone, atol=1e-5)


def test_gelu_exact_and_approximate_differ():
    x = random_inputs()
    exact = TransformerBlock(num_heads=HEADS, intermediate_dim=32, activation="gelu")
    approximate = TransformerBlock.from_config({**exact.get_config(), "activation": "gelu_approximate"})
    exact(x)
    approximate(x)
    approximate.set_weights(exact.get_weights())
    a, b = to_numpy(exact(x)), to_numpy(approximate(x))
    assert not np.allclose(a, b, atol=1e-7)
    np.testing.assert_allclose(a, b, atol=1e-2)


def fused_twins(**kwargs):
    """The same block with its attention computed by the block itself and by the fused op."""
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, attention_block_size=4, **kwargs)
    return block, twin_of(block, fused_attention=True)


@pytest.mark.parametrize("normalize_first, causal", [(True, True), (False, False), (False, True)])
def test_fused_attention_equals_the_blocks_own(normalize_first, causal):
    block, fused = fused_twins(normalize_first=normalize_first, causal=causal)
    assert fused.get_config()["fused_attention"] is True
    x = random_inputs(seq=10)
    np.testing.assert_allclose(to_numpy(fused(x)), to_numpy(block(x)), atol=1e-5)
    # Padding (left and right) and an attention mask; the first positions only.
    kwargs, real = padding_and_attention_masks(seed=7)
    np.testing.assert_allclose(to_numpy(fused(x, **kwargs))[real], to_numpy(block(x, **kwargs))[real], atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(fused(x, output_length=3, **kwargs)), to_numpy(block(x, output_length=3, **kwargs)), atol=1e-5
    )
    # Cached decoding: a prompt, then one token at a time.
    if causal:
        last_steps = []
        for twin in (block, fused):
            _, cache = twin(x[:, :6], cache=empty_cache(twin, BATCH, 10), cache_index=0)
            output, _ = twin(x[:, 6:7], cache=cache, cache_index=6)
            last_steps.append(to_numpy(output))
        np.testing.assert_allclose(last_steps[1], last_steps[0], atol=1e-5)


def test_fused_attention_has_the_blocks_gradients():
    block, fused = fused_twins(normalize_first=True, causal=True)
    x = random_inputs(seq=10)
    for a, b in zip(input_and_weight_gradients(fused, x), input_and_weight_gradients(block, x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_fused_attention_still_drops_attention_probabilities():
    # Only the attention probabilities are dropped: were they skipped, training would change nothing.
    block = TransformerBlock(
        num_heads=HEADS, intermediate_dim=32, dropout=0.0, attention_dropout=0.5, fused_attention=True
    )
    x = random_inputs()
    assert not np.allclose(to_numpy(block(x, training=True)), to_numpy(block(x)), atol=1e-4)


def test_dropout_only_in_training():
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=32, dropout=0.5)
    x = random_inputs()
    np.testing.assert_allclose(to_numpy(block(x)), to_numpy(block(x, training=False)))
    assert not np.allclose(to_numpy(block(x, training=True)), to_numpy(block(x)), atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_heads=0), "num_heads"),
        (dict(intermediate_dim=-4), "intermediate_dim"),
        (dict(dropout=1.5), "dropout"),
        (dict(attention_dropout=-0.1), "attention_dropout"),
        (dict(activation="not_an_activation"), "activation"),
        (dict(layer_norm_epsilon=0), "layer_norm_epsilon"),
        (dict(attention_block_size=0), "attention_block_size"),
        (dict(fused_attention="yes"), "fused_attention"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformerBlock(**{"num_heads": HEADS, "intermediate_dim": 32, **kwargs})


def test_head_dim_sets_the_attention_width_apart_from_the_hidden_size(tmp_path):
    """Three heads of 8 on a hidden size of 16 (a pruned block's shape): the contract, the
    projections' shapes, cached decoding and LoRA all follow `num_heads * head_dim`."""
    run_layer_test(
        TransformerBlock,
        init_kwargs=dict(num_heads=3, head_dim=8, intermediate_dim=32, causal=True),
        input_data={"inputs": random_inputs()},
        expected_output_shape=(BATCH, SEQ, HIDDEN),
        expected_num_trainable_weights=12,
        tmp_path=tmp_path,
    )
    block = TransformerBlock(num_heads=3, head_dim=8, intermediate_dim=32, causal=True)
    x = random_inputs()
    full = to_numpy(block(x))
    assert block.qkv_dense.kernel.shape == (HIDDEN, 72) and block.attention_output_dense.kernel.shape == (24, HIDDEN)
    output, cache = block(x[:, :3], cache=block.empty_cache(BATCH, SEQ), cache_index=0)
    assert cache[0].shape == (BATCH, 3, 8, SEQ)
    last, _ = block(x[:, 3:4], cache=cache, cache_index=3)
    np.testing.assert_allclose(to_numpy(last)[:, 0], full[:, 3], atol=1e-5)
    block.enable_lora(2, targets=("key", "attention_output"))
    assert block._lora["key"][1].shape == (2, 24) and block._lora["attention_output"][0].shape == (24, 2)
    np.testing.assert_allclose(to_numpy(block(x)), full, atol=1e-6)
    assert set(block.merged_kernels()) == {block.qkv_dense.kernel.path, block.attention_output_dense.kernel.path}


def test_heads_must_divide_hidden_size():
    with pytest.raises(ValueError, match="num_heads=3.*hidden size=16"):
        TransformerBlock(num_heads=3, intermediate_dim=32)(random_inputs())


def test_reload_in_a_functional_model_keeps_cache_path(tmp_path):
    """A reloaded block still decodes with a cache (used by tfllm.generation)."""
    inputs = keras.Input((None, HIDDEN))
    model = keras.Model(inputs, TransformerBlock(num_heads=HEADS, intermediate_dim=32, causal=True, name="b")(inputs))
    path = str(tmp_path / "block.keras")
    model.save(path)
    block = keras.saving.load_model(path).get_layer("b")
    x = random_inputs()
    output, _ = block(x, cache=empty_cache(block, BATCH, SEQ), cache_index=0)
    np.testing.assert_allclose(to_numpy(output), to_numpy(model(x)), atol=1e-5)
    assert ops.shape(output) == (BATCH, SEQ, HIDDEN)
