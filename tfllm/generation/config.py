"""`GenerationConfig`: how the next token is chosen, as one object checked once."""

import dataclasses
import numbers
import random

from tfllm._validation import (
    check_choice,
    check_int,
    check_number,
    check_positive_float,
    check_probability,
    check_token_id,
)

SAMPLERS = ("greedy", "random", "top_k", "top_p", "beam")
_SAMPLING = ("random", "top_k", "top_p")
_SAMPLING_OPTIONS = ("temperature", "top_k", "top_p", "seed")
_BEAM_OPTIONS = ("num_beams", "length_penalty")
DEFAULT_NUM_BEAMS = 4


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """The options of text generation, checked when the object is made.

    One `GenerationConfig` serves `tfllm.generation.generate` (which also builds one from its
    keyword options), `decode`, `tfllm.export.GPTServer` and `tfllm.export.export_gpt`.
    Options a sampler does not use are errors, not silently ignored. `None` means the
    option's default (or off).

    Samplers:
        - `"greedy"`: the most likely token.
        - `"random"`: a draw from `softmax(logits / temperature)`, optionally filtered by
          `top_k` and/or `top_p` (top-k first, then top-p on the renormalized rest).
        - `"top_k"`, `"top_p"`: `"random"` with that filter, which must then be given.
        - `"beam"`: beam search over `num_beams` hypotheses per prompt.

    Args:
        sampler: one of `SAMPLERS`.
        temperature: float > 0, default 1 (sampling only).
        top_k: int >= 1 (sampling only): draw among the `top_k` most likely tokens.
        top_p: float in (0, 1] (sampling only): draw among the most likely tokens holding
            this much probability.
        seed: int32 (sampling only). The same seed and inputs give the same output; each
            prompt of a batch draws from its own seed made from this one. `None` draws a
            fresh seed for every call.
        num_beams: int >= 1, default 4 (beam search only).
        length_penalty: float, default 1 (beam search only): hypotheses are ranked by
            `sum of log-probabilities / generated_length ** length_penalty`.
        num_return_sequences: int >= 1: rows per prompt; independent samples when sampling,
            the best beams (at most `num_beams`) for beam search, 1 for greedy.
        repetition_penalty: float > 0; > 1 makes tokens already in the sequence (prompt
            included) less likely: positive logits divided by it, negative multiplied.
        no_repeat_ngram_size: int >= 1: never produce an n-gram of this size twice in a
            row's sequence (prompt included).
        stop_token_ids: an int or ints. A row stops after producing one of them (kept in the
            output) and is padded after it. `None` is the default of the caller: no stop
            token for `generate`, end-of-text for a GPT export; `[]` is none.
        pad_token_id: int, default 0: fills each row after its continuation.

    Example:

    >>> config = GenerationConfig(sampler="top_p", top_p=0.9, temperature=0.8, seed=1)
    >>> generate(model, [[1, 2, 3]], max_new_tokens=8, config=config)
    """

    sampler: str = "greedy"
    temperature: float = None
    top_k: int = None
    top_p: float = None
    seed: int = None
    num_beams: int = None
    length_penalty: float = None
    num_return_sequences: int = 1
    repetition_penalty: float = None
    no_repeat_ngram_size: int = None
    stop_token_ids: tuple = None
    pad_token_id: int = 0

    def __post_init__(self):
        sampler = check_choice("sampler", self.sampler, SAMPLERS)
        for name in _SAMPLING_OPTIONS:
            if getattr(self, name) is not None and sampler not in _SAMPLING:
                raise ValueError(
                    f"`{name}` applies to sampling (sampler='random', 'top_k' or 'top_p'), not to "
                    f"sampler={sampler!r}. Received: {name}={getattr(self, name)!r}"
                )
        for name in _BEAM_OPTIONS:
            if getattr(self, name) is not None and sampler != "beam":
                raise ValueError(
                    f"`{name}` applies to beam search (sampler='beam') only; it does not combine with "
                    f"sampler={sampler!r}. Received: {name}={getattr(self, name)!r}"
                )
        if sampler in ("top_k", "top_p") and getattr(self, sampler) is None:
            raise ValueError(f"sampler={sampler!r} needs the `{sampler}` option, e.g. {sampler}=...")

        checked = dict(
            temperature=_optional(check_positive_float, "temperature", self.temperature),
            top_k=_optional(check_int, "top_k", self.top_k, minimum=1),
            top_p=_optional(check_probability, "top_p", self.top_p),
            seed=_optional(check_int, "seed", self.seed, minimum=-(2**31), maximum=2**31 - 1),
            num_beams=_optional(check_int, "num_beams", self.num_beams, minimum=1),
            length_penalty=_optional(check_number, "length_penalty", self.length_penalty),
            num_return_sequences=check_int("num_return_sequences", self.num_return_sequences, minimum=1),
            repetition_penalty=_optional(check_positive_float, "repetition_penalty", self.repetition_penalty),
            no_repeat_ngram_size=_optional(check_int, "no_repeat_ngram_size", self.no_repeat_ngram_size, minimum=1),
            stop_token_ids=None if self.stop_token_ids is None else _stop_tokens(self.stop_token_ids),
            pad_token_id=check_int("pad_token_id", self.pad_token_id, minimum=0),
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

        if sampler == "greedy" and self.num_return_sequences != 1:
            raise ValueError(
                "Greedy decoding gives one sequence per prompt; sample or use beam search for more. "
                f"Received: num_return_sequences={self.num_return_sequences}"
            )
        if sampler == "beam" and self.num_return_sequences > self.beams:
            raise ValueError(
                f"`num_return_sequences` must be at most num_beams={self.beams}. "
                f"Received: num_return_sequences={self.num_return_sequences}"
            )

    def replace(self, **changes):
        """A copy with `changes`, checked again."""
        return dataclasses.replace(self, **changes)

    @property
    def sampling(self):
        return self.sampler in _SAMPLING

    @property
    def beams(self):
        """The number of beams (1 unless beam search)."""
        if self.sampler != "beam":
            return 1
        return DEFAULT_NUM_BEAMS if self.num_beams is None else self.num_beams

    def check_vocabulary(self, vocabulary_size):
        """Checks the token ids and sizes that depend on the model's vocabulary; returns self."""
        check_token_id("pad_token_id", self.pad_token_id, vocabulary_size)
        for token in self.stop_token_ids or ():
            check_token_id("stop_token_ids", token, vocabulary_size)
        if self.beams > vocabulary_size:
            raise ValueError(
                f"`num_beams` must be at most the vocabulary size, {vocabulary_size}. Received: num_beams={self.beams}"
            )
        return self

    def decode_options(self, vocabulary_size):
        """The static options of `decode` for a model of this vocabulary (checked against it)."""
        self.check_vocabulary(vocabulary_size)
        num_candidates = None
        if self.top_k is not None:
            num_candidates = min(self.top_k, vocabulary_size)
        elif self.top_p is not None and self.top_p < 1.0:
            num_candidates = vocabulary_size
        return dict(
            sampler="random" if self.sampling else self.sampler,
            num_candidates=num_candidates,
            num_beams=self.beams,
            length_penalty=1.0 if self.length_penalty is None else self.length_penalty,
            num_return_sequences=self.num_return_sequences,
            repetition_penalty=1.0 if self.repetition_penalty is None else self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size or 0,
            stop_token_ids=self.stop_token_ids or (),
            pad_token_id=self.pad_token_id,
        )

    def row_options(self):
        """The per-row options of `decode` (`temperature, top_k, top_p, seed`) as Python numbers;
        a `None` seed is drawn here, fresh for every call."""
        seed = random.randrange(2**31) if self.seed is None else self.seed
        return dict(
            temperature=1.0 if self.temperature is None else self.temperature,
            top_k=self.top_k or 0,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=seed,
        )


def _optional(check, name, value, **bounds):
    return None if value is None else check(name, value, **bounds)


def _stop_tokens(stop_token_ids):
    """`stop_token_ids` (an int or ints) as a tuple of ints."""
    if isinstance(stop_token_ids, numbers.Integral) and not isinstance(stop_token_ids, bool):
        stop_token_ids = (stop_token_ids,)
    if isinstance(stop_token_ids, (str, bytes)) or not hasattr(stop_token_ids, "__iter__"):
        raise ValueError(f"`stop_token_ids` must be an int or a list of ints. Received: stop_token_ids={stop_token_ids!r}")
    return tuple(check_int("stop_token_ids", token, minimum=0) for token in stop_token_ids)
