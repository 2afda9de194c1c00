"""The Phang masker: shapes, detached inputs, stage selection, Gumbel outputs."""
import pytest
import torch

from saliency_core.maskers.phang import MaskerConfig, PhangMasker, binary_concrete


def _stages(tiny, x):
    with torch.no_grad():
        return tiny.forward_features(x).stages


def test_mask_shape_range_and_resolution(tiny_classifier):
    x = torch.randn(2, 3, 64, 96)
    m = PhangMasker(MaskerConfig(stage_channels=tiny_classifier.stage_channels)).eval()
    out = m(_stages(tiny_classifier, x), (64, 96))
    assert out.shape == (2, 1, 64, 96)
    assert out.min() >= 0 and out.max() <= 1
    # nearest upsampling from input/4: constant over 4x4 blocks
    blocks = out[0, 0].unfold(0, 4, 4).unfold(1, 4, 4)
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))


def test_activations_are_detached(tiny_classifier):
    x = torch.randn(1, 3, 64, 64)
    stages = [s.clone().requires_grad_(True) for s in _stages(tiny_classifier, x)]
    m = PhangMasker(MaskerConfig(stage_channels=tiny_classifier.stage_channels))
    m(stages, (64, 64)).sum().backward()
    assert all(s.grad is None for s in stages)
    assert all(p.grad is not None for p in m.parameters())


def test_only_selected_stages_matter(tiny_classifier):
    x = torch.randn(1, 3, 64, 64)
    stages = list(_stages(tiny_classifier, x))
    m = PhangMasker(MaskerConfig(stages=(4, 5), stage_channels=tiny_classifier.stage_channels)).eval()
    a = m(stages, (64, 64))
    stages[0] = torch.randn_like(stages[0])  # stage 1 is not read
    assert torch.equal(a, m(stages, (64, 64)))
    stages[3] = torch.randn_like(stages[3])  # stage 4 is
    assert not torch.equal(a, m(stages, (64, 64)))
    assert len(m.reducers) == 2 and m.head.in_channels == 128


@pytest.mark.parametrize("bad", [{"stages": ()}, {"stages": (4, 4)}, {"stages": (6,)}, {"gumbel": "maybe"},
                                 {"gumbel_temperature": 0.0}])
def test_bad_configs_are_refused(bad):
    with pytest.raises(ValueError):
        MaskerConfig(**{"stage_channels": [8, 8, 8, 8, 8], **bad})


def test_binary_concrete_soft_hard_and_straight_through():
    g = torch.Generator().manual_seed(0)
    logits = torch.full((10000,), 1.0, requires_grad=True)
    soft = binary_concrete(logits, 0.1, hard=False, generator=g)
    assert 0 <= soft.min() and soft.max() <= 1 and torch.isfinite(soft).all()
    # P(sample > 0.5) = sigmoid(logit)
    assert (soft > 0.5).float().mean().item() == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item(), abs=0.02)
    hard = binary_concrete(logits, 0.1, hard=True, generator=g)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    hard.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_gumbel_masker_eval_is_binary_when_hard(tiny_classifier):
    x = torch.randn(1, 3, 64, 64)
    m = PhangMasker(MaskerConfig(gumbel="hard", stage_channels=tiny_classifier.stage_channels)).eval()
    out = m(_stages(tiny_classifier, x), (64, 64))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
