"""``inpaint``: scikit-image biharmonic inpainting of the removed pixels (slow: seconds per image)."""
from __future__ import annotations

import numpy as np
import torch

from saliency_core.infill.base import register_infiller


@register_infiller("inpaint", static=False, deterministic=True, slow=True)
class InpaintInfiller:
    """scikit-image biharmonic inpainting of the removed pixels (keep < 0.5). Slow: CPU numpy."""

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import inpaint_biharmonic

        out = x.detach().clone()
        holes = (keep.detach() < 0.5).squeeze(1).cpu().numpy()
        arr = x.detach().permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
        for i in range(x.shape[0]):
            if holes[i].any() and not holes[i].all():
                filled = inpaint_biharmonic(arr[i], holes[i], channel_axis=-1)
                out[i] = torch.from_numpy(filled).permute(2, 0, 1).to(x.dtype)
            elif holes[i].all():
                out[i] = 0.0
        return out
