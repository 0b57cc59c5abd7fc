"""tfllm's Keras layers: backend-agnostic (`keras.ops` only), registered for `.keras` saving.

The token embedding that doubles as the output projection (tied weights) is Keras' own
`keras.layers.ReversibleEmbedding`, re-exported here: `embedding(ids)` embeds,
`embedding(hidden, reverse=True)` projects back onto the vocabulary.
"""

from keras.layers import ReversibleEmbedding

from tfllm.layers.dropout import HashDropout
from tfllm.layers.masked_lm_head import MaskedLMHead
from tfllm.layers.positional_embedding import PositionalEmbedding
from tfllm.layers.transformer_block import TransformerBlock

__all__ = ["HashDropout", "MaskedLMHead", "PositionalEmbedding", "ReversibleEmbedding", "TransformerBlock"]
