"""Every preset builds to exactly the published parameter count."""

import pytest

from tfllm.models import BERT, GPT, PRESETS

# Published counts: GPT-2 (Radford et al. 2019, the released checkpoints; 124M is "117M" in the
# paper) and BERT with its pooler (Devlin et al. 2019; Turc et al. 2019 for the small ones).
PUBLISHED = {
    "gpt2-small": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "bert-tiny": 4_385_920,
    "bert-mini": 11_170_560,
    "bert-small": 28_763_648,
    "bert-medium": 41_373_184,
    "bert-base": 109_482_240,
    "bert-large": 335_141_888,
}
FAST = ["gpt2-small", "bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base"]


def build(preset):
    return (GPT if preset.startswith("gpt") else BERT)(preset)


@pytest.mark.parametrize("preset", FAST)
def test_parameter_count(preset):
    assert build(preset).count_params() == PUBLISHED[preset]


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(set(PUBLISHED) - set(FAST)))
def test_parameter_count_large(preset):
    assert build(preset).count_params() == PUBLISHED[preset]


def test_every_preset_has_a_published_count_or_is_a_test_size():
    assert set(PRESETS) == set(PUBLISHED) | {"gpt-test", "bert-test"}
