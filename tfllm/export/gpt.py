"""A GPT model, its tokenizer and the cached decode loop as one servable `tf.Module`."""

import numpy as np
import tensorflow as tf

from tfllm._validation import check_positive_int
from tfllm.export._servable import servable_model
from tfllm.generation import decoding
from tfllm.generation.config import GenerationConfig
from tfllm.generation.generate import generation_config

_PROMPT = tf.TensorSpec([None], tf.string, name="prompt")
_GENERATE_INPUTS = [
    _PROMPT,
    tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([None], tf.float32, name="temperature"),
    tf.TensorSpec([None], tf.int32, name="top_k"),
    tf.TensorSpec([None], tf.float32, name="top_p"),
    tf.TensorSpec([None], tf.int32, name="seed"),
]


class GPTServer(tf.Module):
    """Text in, text out: tokenizer -> prompt window -> cached decode loop -> detokenizer.

    Every signature takes and returns `[batch]` tensors, so TF Serving's row format and
    server-side batching work. Nothing is compiled with XLA and the decode loop writes its
    caches with scatters, so the graph runs on a default TF Serving.

    Signatures (see `tfllm.export.export_gpt` for the behaviour on odd inputs):
        - `serving_default`: `{"prompt"}` -> `{"completion"}` with the export-time sampler.
        - `generate`: `{"prompt", "max_new_tokens", "temperature", "top_k", "top_p",
          "seed"}` -> `{"completion"}`, sampling options per row.
        - `score`: `{"text"}` -> `{"log_likelihood", "num_tokens"}`.

    Args:
        model: a causal language model (see `tfllm.generation.GPTDecoder`).
        tokenizer: its tokenizer, with an end-of-text token (`end_of_text_id`).
        max_new_tokens: the cap on new tokens per request (default: 64, or half the model's
            maximum sequence length when that is less).
        default_max_new_tokens: new tokens for `serving_default` (default: the cap).
        config: a `tfllm.generation.GenerationConfig` for `serving_default` (sampler
            `"greedy"`, `"random"`, `"top_k"` or `"top_p"`; one sequence per prompt); its
            `stop_token_ids` (default: end-of-text), `repetition_penalty` and
            `no_repeat_ngram_size` apply to both generating signatures.
        num_candidates: how many of the most likely tokens `generate` samples among
            (default: the whole vocabulary, so `top_p` is exact).
        **options: instead of `config`, its options.
    """

    def __init__(
        self,
        model,
        tokenizer,
        max_new_tokens=None,
        default_max_new_tokens=None,
        *,
        config=None,
        num_candidates=None,
        **options,
    ):
        super().__init__(name="gpt_server")
        self.model = model = servable_model(model)
        self.tokenizer = tokenizer
        decoder = decoding.GPTDecoder(model)  # Checks that `model` is a causal language model.
        self.context_length = decoder.max_sequence_length
        self.vocabulary_size = decoder.vocabulary_size
        if self.context_length is None:
            raise ValueError(
                "A GPT export needs a model with a maximum sequence length (a `PositionalEmbedding`): "
                "it keeps the most recent tokens of long prompts within it."
            )
        if max_new_tokens is None:
            max_new_tokens = max(1, min(64, self.context_length // 2))
        check_positive_int("max_new_tokens", max_new_tokens)
        if max_new_tokens >= self.context_length:
            raise ValueError(
                f"`max_new_tokens` must leave room for a prompt in the model's max_sequence_length="
                f"{self.context_length}. Received: max_new_tokens={max_new_tokens}"
            )
        self.max_new_tokens = max_new_tokens
        self.default_max_new_tokens = max_new_tokens if default_max_new_tokens is None else default_max_new_tokens
        check_positive_int("default_max_new_tokens", self.default_max_new_tokens)
        if self.default_max_new_tokens > max_new_tokens:
            raise ValueError(
                f"`default_max_new_tokens` ({self.default_max_new_tokens}) exceeds `max_new_tokens` ({max_new_tokens})."
            )

        self.start_token_id = getattr(tokenizer, "end_of_text_id", None)
        if self.start_token_id is None:
            raise ValueError(
                "The tokenizer needs an end-of-text token (`end_of_text_id`): it starts empty prompts "
                "and texts to score, and stops generation."
            )
        config = generation_config(config, options.pop("sampler", "greedy"), options)
        if config.sampler == "beam" or config.num_return_sequences != 1:
            raise ValueError(
                "A GPT export samples or decodes greedily, one completion per prompt: `sampler` must be "
                f"'greedy', 'random', 'top_k' or 'top_p' and num_return_sequences 1. Received: "
                f"sampler={config.sampler!r}, num_return_sequences={config.num_return_sequences}"
            )
        if config.stop_token_ids is None:
            config = config.replace(stop_token_ids=(self.start_token_id,))
        self.config = config.replace(pad_token_id=self.start_token_id)
        self.config.check_vocabulary(self.vocabulary_size)
        self.stop_token_ids = self.config.stop_token_ids
        self.num_candidates = min(num_candidates or self.vocabulary_size, self.vocabulary_size)
        check_positive_int("num_candidates", self.num_candidates)
        row = self.config.row_options() if self.config.sampling else {}
        self.defaults = dict(
            temperature=row.get("temperature", 1.0),
            top_k=row.get("top_k", 0),
            top_p=row.get("top_p", 1.0),
            seed=0 if self.config.seed is None else self.config.seed,
        )

        self.serving_default = tf.function(self._serving_default, input_signature=[_PROMPT], autograph=False)
        self.generate = tf.function(self._generate, input_signature=_GENERATE_INPUTS, autograph=False)
        self.score = tf.function(
            self._score, input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False
        )

    def signatures(self):
        return {"serving_default": self.serving_default, "generate": self.generate, "score": self.score}

    def warmup_requests(self):
        """One request per signature, for TF Serving's warm-up file."""
        prompts = np.array([b"Hello", b""], dtype=object)
        return [
            ("serving_default", {"prompt": prompts}),
            (
                "generate",
                {
                    "prompt": prompts,
                    "max_new_tokens": np.array([4, 2], np.int32),
                    "temperature": np.array([1.0, 0.0], np.float32),
                    "top_k": np.array([0, 5], np.int32),
                    "top_p": np.array([0.9, 1.0], np.float32),
                    "seed": np.array([0, 1], np.int32),
                },
            ),
            ("score", {"text": prompts}),
        ]

    # ----------------------------------------------------------------- signatures

    def _serving_default(self, prompt):
        rows = tf.shape(prompt)[0]
        d = self.defaults
        return self._complete(
            prompt,
            tf.fill([rows], self.default_max_new_tokens),
            "random" if self.config.sampling else "greedy",
            tf.fill([rows], float(d["temperature"])),
            tf.fill([rows], d["top_k"]),
            tf.fill([rows], float(d["top_p"])),
            tf.fill([rows], d["seed"]),
        )

    def _generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        # Every option holds one value per prompt. A request in TF Serving's column format can
        # send other lengths, which would broadcast over the rows: it fails instead, with an
        # InvalidArgument error for that request. (With server-side batching the server itself
        # refuses such a request before merging it into a batch.)
        rows = tf.shape(prompt)[0]
        options = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        checks = []
        for name, value in options.items():
            length = tf.shape(value)[0]
            message = tf.strings.format(f"generate: `{name}` has {{}} rows but `prompt` has {{}}", (length, rows))
            checks.append(tf.debugging.Assert(tf.equal(length, rows), [message]))
        with tf.control_dependencies(checks):
            prompt = tf.identity(prompt)
            max_new_tokens, temperature, top_k, top_p, seed = (tf.identity(value) for value in options.values())
        # Out-of-range options get a defined meaning rather than an error (documented in
        # `export_gpt`), since under server-side batching an error would fail every request
        # merged into the batch: a temperature that is not a finite number > 0 (NaN and
        # infinities included) is greedy (top-k 1), top_p outside (0, 1] (NaN included) and
        # top_k <= 0 turn that filter off.
        greedy = ~(tf.math.is_finite(temperature) & (temperature > 0))
        top_k = tf.where(greedy, 1, tf.where(top_k > 0, top_k, 0))
        temperature = tf.where(greedy, 1.0, temperature)
        top_p = tf.where((top_p > 0) & (top_p <= 1), top_p, 1.0)
        # A batch of greedy rows takes the greedy loop, which sorts nothing.
        return tf.cond(
            tf.reduce_all(greedy),
            lambda: self._complete(prompt, max_new_tokens, "greedy", temperature, top_k, top_p, seed),
            lambda: self._complete(prompt, max_new_tokens, "random", temperature, top_k, top_p, seed),
        )

    def _score(self, text):
        # Each text after the start token, so its first token is scored too; texts longer than
        # the context keep their last `context_length` tokens (the start token drops out).
        ids, lengths = self._window(self.tokenizer(text), self.context_length + 1, prepend_start=True, min_columns=2)
        token_ids = ids[:, :-1]
        padding_mask = tf.sequence_mask(lengths - 1, tf.shape(token_ids)[1], tf.int32)
        logits = self.model({"token_ids": token_ids, "padding_mask": padding_mask}, training=False)
        log_probabilities = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        targets = tf.gather(log_probabilities, ids[:, 1:], batch_dims=2)
        log_likelihood = tf.reduce_sum(targets * tf.cast(padding_mask, tf.float32), axis=1)
        return {"log_likelihood": log_likelihood, "num_tokens": lengths - 1}

    # ----------------------------------------------------------------- shared

    def _complete(self, prompt, max_new_tokens, sampler, temperature, top_k, top_p, seed):
        max_new_tokens = tf.clip_by_value(max_new_tokens, 0, self.max_new_tokens)
        # One loop for the batch runs to its longest request; each row is cut to its own.
        steps = tf.maximum(tf.reduce_max(tf.concat([max_new_tokens, [0]], 0)), 1)
        ids, lengths = self._window(self.tokenizer(prompt), self.context_length - steps, prepend_start=False)
        config = self._decode_config(sampler)
        options = {}
        if sampler == "random":
            options = dict(
                temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, num_candidates=self.num_candidates
            )

        def decode(ids, lengths):
            return decoding.decode(self.model, ids, lengths, steps, config, xla=False, **options)

        # A lone request gets a loop traced for one row, whose attention the decoder writes
        # without batched matrix products (see `GPTDecoder`'s `xla`).
        output = tf.cond(
            tf.shape(ids)[0] == 1,
            lambda: decode(tf.ensure_shape(ids, [1, None]), tf.ensure_shape(lengths, [1])),
            lambda: decode(ids, lengths),
        )

        positions = tf.range(tf.shape(output)[1])[None, :]
        generated = (positions >= lengths[:, None]) & (positions < (lengths + max_new_tokens)[:, None])
        if self.stop_token_ids:
            stopped = generated & tf.reduce_any(output[:, :, None] == list(self.stop_token_ids), axis=-1)
            # Everything from the first stop token on is dropped (the stop token included).
            generated &= tf.cumsum(tf.cast(stopped, tf.int32), axis=1) == 0
        completion = self.tokenizer.detokenize(tf.ragged.boolean_mask(output, generated))
        return {"completion": completion}

    def _decode_config(self, sampler):
        """The export's config for one traced loop: greedy, or sampling whose per-row options
        come as tensors."""
        return GenerationConfig(
            sampler=sampler,
            repetition_penalty=self.config.repetition_penalty,
            no_repeat_ngram_size=self.config.no_repeat_ngram_size,
            stop_token_ids=self.stop_token_ids,
            pad_token_id=self.start_token_id,
        )

    def _window(self, ids, keep, prepend_start, min_columns=1):
        """Right-padded dense ids `(rows, length)` and lengths `(rows,)` from ragged ids.

        Rows keep their last `keep` tokens. An empty row (or every row, with
        `prepend_start`) starts with the start token, so no row is empty.
        """
        ids = tf.cast(ids, tf.int32)
        lengths = ids.row_lengths()
        start = tf.fill([ids.nrows(), 1], self.start_token_id)
        needs_start = tf.ones_like(lengths, tf.bool) if prepend_start else lengths == 0
        ids = tf.concat([tf.ragged.boolean_mask(start, needs_start[:, None]), ids], axis=1)
        keep = tf.cast(keep, ids.row_splits.dtype)
        position = tf.ragged.range(ids.row_lengths())
        ids = tf.ragged.boolean_mask(ids, position >= (ids.row_lengths() - keep)[:, None])
        dense = ids.to_tensor(default_value=self.start_token_id)
        # A batch of zero rows still needs columns for the model to run on.
        padding = tf.maximum(min_columns - tf.shape(dense)[1], 0)
        dense = tf.pad(dense, [[0, 0], [0, padding]], constant_values=self.start_token_id)
        return dense, tf.cast(ids.row_lengths(), tf.int32)
