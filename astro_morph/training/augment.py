"""The paper's training augmentation (Sec. 3.2), vectorised over a batch in torch.

One affine warp per image does rotation (0-360 deg), mirror flip (p=0.5), the random crop
size S in [160, 240] of 424 (scale-jitter) and a 0-3 pixel translation, then colour jitter
(brightness, contrast, saturation, hue). Runs on the training device, so CUDA does it too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment_batch", "CROP_RANGE"]

#: Paper Sec. 3.2: crop side S in [160, 240] pixels of a 424-pixel image.
CROP_RANGE = (160 / 424, 240 / 424)


def augment_batch(images: torch.Tensor, out_size: int, region: float,
                  crop_range: tuple[float, float] = CROP_RANGE, max_shift: float = 3.0,
                  jitter: float = 0.2, hue: float = 0.05,
                  generator: torch.Generator | None = None,
                  return_flip: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Augment ``images`` (N, C, H, W) float in [0, 1] whose side covers ``region`` of the
    original image; returns (N, C, out_size, out_size), and with ``return_flip`` also each
    image's mirror sign (-1: mirrored, which swaps a spiral's sense of winding; 1: not)."""
    n, c = images.shape[:2]
    dev = images.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device="cpu").to(dev)

    angle = rand(n) * 2 * math.pi
    crop = crop_range[0] + rand(n) * (crop_range[1] - crop_range[0])
    scale = crop / region  # output spans this fraction of the cached image
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0).to(dev)
    shift = (rand(n, 2) * 2 - 1) * max_shift * 2 / out_size  # pixels -> [-1, 1] units
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([
        torch.stack([cos * flip, -sin, shift[:, 0]], 1),
        torch.stack([sin * flip, cos, shift[:, 1]], 1),
    ], 1)
    grid = F.affine_grid(theta, (n, c, out_size, out_size), align_corners=False)
    x = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if jitter > 0:
        b = 1 + (rand(n, 1, 1, 1) * 2 - 1) * jitter
        x = x * b
        mean = x.mean((1, 2, 3), keepdim=True)
        ct = 1 + (rand(n, 1, 1, 1) * 2 - 1) * jitter
        x = (x - mean) * ct + mean
        gray = x.mean(1, keepdim=True)
        sat = 1 + (rand(n, 1, 1, 1) * 2 - 1) * jitter
        x = (x - gray) * sat + gray
    if hue > 0 and c == 3:
        x = _rotate_hue(x, (rand(n) * 2 - 1) * hue * 2 * math.pi)
    x = x.clamp_(0, 1)
    return (x, flip) if return_flip else x


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``angle`` radians about the gray axis (YIQ chroma rotation)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                           [0.211, -0.523, 0.312]], device=x.device, dtype=x.dtype)
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rot = torch.stack([torch.stack([one, zero, zero], 1),
                       torch.stack([zero, cos, -sin], 1),
                       torch.stack([zero, sin, cos], 1)], 1)
    m = from_yiq @ rot @ to_yiq  # (N, 3, 3)
    return torch.einsum("nij,njhw->nihw", m, x)
