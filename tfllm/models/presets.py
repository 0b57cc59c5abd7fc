"""Named model sizes: the published GPT-2 and BERT configurations plus tiny sizes for tests.

Each preset is a plain keyword config: `tfllm.models.GPT(**PRESETS["gpt2-small"])` is the same
model as `tfllm.models.GPT("gpt2-small")`.
"""

GPT_PRESETS = {
    # Radford et al. (2019); the sizes of the released checkpoints.
    "gpt2-small": dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    "gpt2-medium": dict(num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096),
    "gpt2-large": dict(num_layers=36, num_heads=20, hidden_dim=1280, intermediate_dim=5120),
    "gpt2-xl": dict(num_layers=48, num_heads=25, hidden_dim=1600, intermediate_dim=6400),
}
for _config in GPT_PRESETS.values():
    _config.update(vocabulary_size=50257, max_sequence_length=1024, dropout=0.1, layer_norm_epsilon=1e-5)
GPT_PRESETS["gpt-test"] = dict(
    vocabulary_size=512,
    num_layers=2,
    num_heads=2,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=64,
    dropout=0.0,
    layer_norm_epsilon=1e-5,
)

BERT_PRESETS = {
    # Devlin et al. (2019) base/large; Turc et al. (2019) tiny/mini/small/medium.
    "bert-tiny": dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512),
    "bert-mini": dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024),
    "bert-small": dict(num_layers=4, num_heads=8, hidden_dim=512, intermediate_dim=2048),
    "bert-medium": dict(num_layers=8, num_heads=8, hidden_dim=512, intermediate_dim=2048),
    "bert-base": dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    "bert-large": dict(num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096),
}
for _config in BERT_PRESETS.values():
    _config.update(
        vocabulary_size=30522, max_sequence_length=512, num_segments=2, dropout=0.1, layer_norm_epsilon=1e-12
    )
BERT_PRESETS["bert-test"] = dict(
    vocabulary_size=512,
    num_layers=2,
    num_heads=2,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=64,
    num_segments=2,
    dropout=0.0,
    layer_norm_epsilon=1e-12,
)
del _config

PRESETS = {**GPT_PRESETS, **BERT_PRESETS}
