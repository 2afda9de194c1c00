"""Masking composites and the infiller registry."""
import pytest
import torch

from saliency_core.infill.base import InfillerError, create_infiller, list_infillers
from saliency_core.infill.blur import gaussian_blur
from saliency_core.infill.composite import composite, masked_in, masked_out


def test_composites_by_hand():
    x = torch.tensor([[[[2.0, 4.0]]]])
    m = torch.tensor([[[[1.0, 0.25]]]])
    fill = torch.tensor([[[[10.0, 10.0]]]])
    assert masked_in(x, m).flatten().tolist() == [2.0, 1.0]
    assert masked_out(x, m).flatten().tolist() == [0.0, 3.0]
    assert masked_in(x, m, fill).flatten().tolist() == [2.0, 1.0 + 7.5]
    assert masked_out(x, m, fill).flatten().tolist() == [10.0, 3.0 + 2.5]
    assert torch.equal(composite(x, torch.ones_like(m), fill), x)


def test_registry_lists_all_and_refuses_unknown():
    assert {"gray", "none", "mean", "blur", "noise", "random-image", "local-mean", "inpaint"} <= set(list_infillers())
    with pytest.raises(InfillerError, match="unknown infiller 'paint'"):
        create_infiller("paint")
    with pytest.raises(InfillerError):
        create_infiller("blur", sigma=-1)
    with pytest.raises(InfillerError, match="takes no options"):
        create_infiller("gray", colour=3)


def test_gray_mean_and_blur():
    x = torch.randn(2, 3, 16, 16)
    keep = torch.ones(2, 1, 16, 16)
    assert torch.equal(create_infiller("gray")(x, keep), torch.zeros_like(x))
    mean = create_infiller("mean")(x, keep)
    assert torch.allclose(mean[:, :, 3, 5], x.mean(dim=(2, 3)))
    const = torch.full((1, 3, 20, 20), 0.7)
    assert torch.allclose(gaussian_blur(const, 3.0), const, atol=1e-6)  # blur keeps constants
    blurred = create_infiller("blur", sigma=2.0)(x, keep)
    assert blurred.std() < x.std()                                        # and smooths noise


def test_local_mean_uses_only_kept_pixels():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 0] = 9.0
    keep = torch.zeros(1, 1, 5, 5)
    keep[0, 0, 0, 0] = 1.0
    keep[0, 0, 0, 1] = 1.0  # a kept pixel of value 0
    fill = create_infiller("local-mean", window=3)(x, keep)
    assert fill[0, 0, 1, 1].item() == pytest.approx(4.5)  # mean of the two kept pixels in its window
    assert fill[0, 0, 4, 4].item() == 0.0                 # nothing kept nearby -> gray


def test_random_image_draws_from_pool_and_is_seeded():
    pool = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(5)])
    inf = create_infiller("random-image", pool=pool, seed=1)
    fill = inf(torch.zeros(4, 3, 16, 16), torch.ones(4, 1, 16, 16))
    assert fill.shape == (4, 3, 16, 16)
    values = fill[:, 0, 0, 0].tolist()
    assert all(v in {0.0, 1.0, 2.0, 3.0, 4.0} for v in values)
    again = create_infiller("random-image", pool=pool, seed=1)(torch.zeros(4, 3, 16, 16), torch.ones(4, 1, 16, 16))
    assert torch.equal(fill, again)
    batch = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 3, 4, 4)
    rolled = create_infiller("random-image")(batch, torch.ones(3, 1, 4, 4))
    assert all(rolled[i, 0, 0, 0] != i for i in range(3))  # never its own image


def test_noise_and_inpaint_fill_holes():
    x = torch.zeros(1, 3, 12, 12)
    x[..., :, :6] = 1.0
    keep = torch.ones(1, 1, 12, 12)
    keep[..., 4:8, 4:8] = 0
    noise = create_infiller("noise", seed=0)(x, keep)
    assert noise.shape == x.shape and noise.std() > 0
    filled = create_infiller("inpaint")(x, keep)
    assert torch.equal(filled[..., 0, 0], x[..., 0, 0])        # kept pixels untouched
    assert 0.1 < filled[0, 0, 6, 5].item() < 0.9 or 0.1 < filled[0, 0, 6, 6].item() < 0.9  # smooth across the edge
