"""In-graph tokenizers, trained from the user's corpus: byte-level BPE (GPT).

`tokenizer(strings)` gives int32 ids (ragged for a batch), `tokenizer.detokenize(ids)` gives
strings back; special tokens are added by the data pipeline, never by the call. Tokenizers run
in `tf.data` and in SavedModels served by TF Serving.
"""

from tfllm.tokenizers.byte_pair_tokenizer import BytePairTokenizer

__all__ = ["BytePairTokenizer"]
