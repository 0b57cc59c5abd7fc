"""In-graph tokenizers, trained from the user's corpus: byte-level BPE (GPT) and WordPiece (BERT).

Both are Keras layers: `tokenizer(strings)` gives int32 ids (ragged for a batch),
`tokenizer.detokenize(ids)` gives strings back; special tokens are added by the data pipeline,
never by the call. Both run in `tf.data` and in SavedModels served by TF Serving.
"""

from tfllm.tokenizers.byte_pair_tokenizer import BytePairTokenizer
from tfllm.tokenizers.word_piece_tokenizer import WordPieceTokenizer

__all__ = ["BytePairTokenizer", "WordPieceTokenizer"]
