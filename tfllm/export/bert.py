"""BERT models with their WordPiece tokenizer and packer as servable `tf.Module`s."""

import numpy as np
import tensorflow as tf

from tfllm.data.classification import BERTInputPacker
from tfllm._validation import check_positive_int
from tfllm.export._servable import servable_model
from tfllm.tokenizers import WordPieceTokenizer

_TEXT = tf.TensorSpec([None], tf.string, name="text")
_TEXT_PAIR = tf.TensorSpec([None], tf.string, name="text_pair")
_WARMUP_TEXTS = np.array([b"A short warm-up request.", b""], dtype=object)


class _BERTServer(tf.Module):
    """What every BERT export shares: packing text as the model was trained, and `embed`."""

    def __init__(self, model, tokenizer, sequence_length, normalize_embeddings, name):
        super().__init__(name=name)
        for attribute in ("cls_token_id", "sep_token_id", "pad_token_id"):
            if getattr(tokenizer, attribute, None) is None:
                raise ValueError(f"A BERT export needs a WordPiece tokenizer with `{attribute}`.")
        check_positive_int("sequence_length", sequence_length)
        self.model = model = servable_model(model)
        self.tokenizer = tokenizer
        self.pack = BERTInputPacker(tokenizer, sequence_length)
        self.encoder = _sequence_encoder(model)
        self.normalize_embeddings = normalize_embeddings
        self.embed = tf.function(self._embed, input_signature=[_TEXT], autograph=False)

    def _embed(self, text):
        """Mean of the final hidden states over the real tokens (`[CLS]` and `[SEP]` included,
        as sentence-transformers does), optionally L2-normalized."""
        features = self.pack(text)
        hidden = tf.cast(self.encoder(features), tf.float32)
        mask = tf.cast(features["padding_mask"], tf.float32)[:, :, None]
        embedding = tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        if self.normalize_embeddings:
            embedding = tf.math.l2_normalize(embedding, axis=-1)
        return {"embedding": embedding}


class ClassifierServer(_BERTServer):
    """A BERT text classifier: `{"text"[, "text_pair"]}` -> `{"probabilities", "label"}`.

    Signatures: `serving_default` (classify) and `embed` (`{"text"}` -> `{"embedding":
    float32 [batch, hidden_dim]}`, mean-pooled).
    """

    def __init__(self, model, tokenizer, labels, sequence_length, text_pair=False, normalize_embeddings=False):
        super().__init__(model, tokenizer, sequence_length, normalize_embeddings, name="classifier_server")
        labels = [str(label) for label in labels]
        num_classes = model.output.shape[-1]
        if len(labels) != num_classes:
            raise ValueError(f"The model has {num_classes} classes but {len(labels)} labels were given: {labels}")
        self.labels = labels
        self.text_pair = text_pair
        self._label_names = tf.constant(labels)
        inputs = [_TEXT, _TEXT_PAIR] if text_pair else [_TEXT]
        self.classify = tf.function(self._classify, input_signature=inputs, autograph=False)

    def signatures(self):
        return {"serving_default": self.classify, "embed": self.embed}

    def warmup_requests(self):
        inputs = {"text": _WARMUP_TEXTS}
        if self.text_pair:
            inputs["text_pair"] = _WARMUP_TEXTS[::-1]
        return [("serving_default", inputs), ("embed", {"text": _WARMUP_TEXTS})]

    def _classify(self, text, text_pair=None):
        logits = self.model(self.pack(text, text_pair), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        label = tf.gather(self._label_names, tf.argmax(probabilities, axis=-1, output_type=tf.int32))
        return {"probabilities": probabilities, "label": label}


class EntityServer(_BERTServer):
    """A BERT token classifier as a named-entity recognizer: raw text in, entities out.

    Signatures: `serving_default` (`{"text"}` -> `{"entity_texts", "entity_types",
    "entity_starts", "entity_ends", "entity_scores"}`, each `[batch, max_entities]`; see
    `tfllm.inference.EntityRecognizer.entities`) and `embed`. Texts longer than
    `sequence_length` are read in overlapping windows, never cut.
    """

    def __init__(self, model, tokenizer, labels, sequence_length, stride=None, normalize_embeddings=False):
        from tfllm.inference import EntityRecognizer

        super().__init__(model, tokenizer, sequence_length, normalize_embeddings, name="entity_server")
        self.recognizer = EntityRecognizer(self.model, tokenizer, labels, sequence_length, stride)
        self.labels = self.recognizer.labels
        self.recognize = tf.function(self.recognizer.entities, input_signature=[_TEXT], autograph=False)

    def signatures(self):
        return {"serving_default": self.recognize, "embed": self.embed}

    def warmup_requests(self):
        texts = np.array([b"EU rejects German call to boycott British lamb.", b""], dtype=object)
        return [("serving_default", {"text": texts}), ("embed", {"text": _WARMUP_TEXTS})]


class QuestionAnswerServer(_BERTServer):
    """A BERT span model as an extractive question answerer: question and context in, answer out.

    Signatures: `serving_default` (`{"question", "context"}` -> `{"answer": string,
    "answer_start": int32, "answer_end": int32, "score": float32}`, each `[batch]`; see
    `tfllm.inference.QuestionAnswerer.answers`) and `embed`. A context longer than
    `sequence_length` is read in overlapping windows, never cut.
    """

    def __init__(
        self,
        model,
        tokenizer,
        sequence_length,
        stride=None,
        max_question_length=None,
        max_answer_length=30,
        normalize_embeddings=False,
    ):
        from tfllm.inference import QuestionAnswerer

        super().__init__(model, tokenizer, sequence_length, normalize_embeddings, name="question_answer_server")
        self.answerer = QuestionAnswerer(
            self.model, tokenizer, sequence_length, stride, max_question_length, max_answer_length
        )
        self.answer = tf.function(
            self._answer,
            input_signature=[tf.TensorSpec([None], tf.string, name="question"), tf.TensorSpec([None], tf.string, name="context")],
            autograph=False,
        )

    def signatures(self):
        return {"serving_default": self.answer, "embed": self.embed}

    def warmup_requests(self):
        inputs = {
            "question": np.array([b"Where does the cat sit?", b""], dtype=object),
            "context": np.array([b"The cat sits on the mat.", b""], dtype=object),
        }
        return [("serving_default", inputs), ("embed", {"text": _WARMUP_TEXTS})]

    def _answer(self, question, context):
        tf.debugging.assert_equal(
            tf.shape(question), tf.shape(context), message="`question` and `context` must have the same batch size"
        )
        return {name: value[:, 0] for name, value in self.answerer.answers(question, context).items()}


class MaskedLMServer(_BERTServer):
    """Fill the `[MASK]`: `{"text"}` -> the text with each mask filled, and the candidates.

    Signatures: `serving_default` (`{"text"}` -> `{"filled": string [batch], "predictions":
    string [batch, max_masks, top_k], "scores": float32 [batch, max_masks, top_k]}`) and
    `embed`. Each `[MASK]` in the text (written exactly so, upper case) is predicted; the first
    `max_masks` per text get candidates, later ones stay `[MASK]`; empty candidate slots hold
    `""` and score 0. Texts are truncated to `sequence_length - 2` tokens first.
    """

    def __init__(self, pretrainer, tokenizer, sequence_length, top_k=5, max_masks=8, normalize_embeddings=False):
        # "[MASK]" written in the text must stay one token: a copy of the tokenizer that
        # keeps special tokens found in strings.
        tokenizer = WordPieceTokenizer(
            tokenizer.get_vocabulary(),
            lowercase=tokenizer.lowercase,
            strip_accents=tokenizer.strip_accents,
            special_tokens_in_strings=True,
        )
        super().__init__(pretrainer, tokenizer, sequence_length, normalize_embeddings, name="masked_lm_server")
        from tfllm.models import BERTPretrainer

        if not isinstance(pretrainer, BERTPretrainer):
            raise ValueError(
                f"`pretrainer` must be a `tfllm.models.BERTPretrainer`. Received: {type(pretrainer).__name__}"
            )
        check_positive_int("top_k", top_k)
        check_positive_int("max_masks", max_masks)
        vocabulary_size = pretrainer.backbone.vocabulary_size
        if top_k > vocabulary_size:
            raise ValueError(
                f"`top_k` must be at most the model's vocabulary size ({vocabulary_size}): each mask gets "
                f"top_k distinct candidates. Received: top_k={top_k}"
            )
        self.top_k, self.max_masks = top_k, max_masks
        self._vocabulary = tf.constant(tokenizer.get_vocabulary())
        self.fill_mask = tf.function(self._fill_mask, input_signature=[_TEXT], autograph=False)

    def signatures(self):
        return {"serving_default": self.fill_mask, "embed": self.embed}

    def warmup_requests(self):
        texts = np.array([b"The [MASK] sat on the mat.", b""], dtype=object)
        return [("serving_default", {"text": texts}), ("embed", {"text": _WARMUP_TEXTS})]

    def _fill_mask(self, text):
        features = self.pack(text)
        token_ids = features["token_ids"]
        rows, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        is_mask = token_ids == self.tokenizer.mask_token_id
        # The first `max_masks` mask positions of each row, padded with position 0 (invalid).
        rank = tf.cumsum(tf.cast(is_mask, tf.int32), axis=1) - 1
        slot = tf.where(is_mask & (rank < self.max_masks), rank, self.max_masks)
        position = tf.broadcast_to(tf.range(length)[None, :], [rows, length])
        mask_positions = tf.zeros([rows, self.max_masks + 1], tf.int32)
        mask_positions = tf.tensor_scatter_nd_update(
            mask_positions,
            tf.stack([tf.broadcast_to(tf.range(rows)[:, None], [rows, length]), slot], axis=-1),
            position,
        )[:, : self.max_masks]
        valid = tf.range(self.max_masks)[None, :] < tf.reduce_sum(tf.cast(is_mask, tf.int32), axis=1)[:, None]

        logits = self.model({**features, "mask_positions": mask_positions}, training=False)["mlm"]
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        scores, candidate_ids = tf.math.top_k(probabilities, k=self.top_k)
        predictions = tf.where(valid[:, :, None], tf.gather(self._vocabulary, candidate_ids), "")
        scores = tf.where(valid[:, :, None], scores, 0.0)

        # The text again, each predicted mask replaced by its best candidate.
        best = tf.where(valid, candidate_ids[:, :, 0], self.tokenizer.mask_token_id)
        filled_ids = tf.tensor_scatter_nd_update(
            token_ids,
            tf.stack([tf.broadcast_to(tf.range(rows)[:, None], [rows, self.max_masks]), mask_positions], axis=-1),
            tf.where(valid, best, tf.gather(token_ids, mask_positions, batch_dims=1)),
        )
        special = (filled_ids == self.tokenizer.cls_token_id) | (filled_ids == self.tokenizer.sep_token_id)
        keep = (features["padding_mask"] > 0) & ~special
        filled = self.tokenizer.detokenize(tf.ragged.boolean_mask(filled_ids, keep))
        return {"filled": filled, "predictions": predictions, "scores": scores}


def _sequence_encoder(model):
    """A callable: BERT features -> the final hidden states `(batch, length, hidden_dim)`.

    `model` is a `tfllm.models.BERT` or a task model holding one as `model.backbone`.
    """
    from tfllm.models import BERT

    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, BERT):
        raise ValueError(
            f"A BERT export needs a `tfllm.models.BERT` or a task model with one as `backbone`. "
            f"Received: {type(model).__name__} {getattr(model, 'name', model)!r}"
        )
    return lambda features: backbone(features, training=False)["sequence_output"]
