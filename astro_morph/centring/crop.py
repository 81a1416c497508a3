"""The paper's validation transform: centre crop 200 of 424 pixels, then resize (Sec. 3.2).

The crop is a *fraction* of the shorter image side (200/424), so 423-pixel Galaxy Zoo 1 images,
424-pixel Kaggle images and 120-pixel SkyServer cutouts are framed alike.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import UserError
from ..flags import MorphFlag
from ..hookspecs import hookimpl
from ..sources.base import Cutout
from ..sources.images import pillow_rgb
from .base import CentringStep, Prepared

__all__ = ["PAPER_CROP_FRACTION", "Prepared", "CentreCrop", "crop_or_paper", "crop_resize",
           "to_unit_float"]

#: Paper Sec. 3.2: validation images are centre-cropped to 200x200 of the 424x424 originals.
PAPER_CROP_FRACTION = 200 / 424


def crop_or_paper(crop_fraction: float | None) -> float:
    """A recorded training crop, or the paper's 200/424 where none is recorded (``None``:
    model files and configs that predate the option, and runs on the paper's crop)."""
    return PAPER_CROP_FRACTION if crop_fraction is None else float(crop_fraction)


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 0-255 or float data to float32 in [0, 1]; NaNs become 0."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1 / 255)
    out = np.nan_to_num(image.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0)


def crop_resize(image: np.ndarray, size: int, crop_fraction: float = PAPER_CROP_FRACTION,
                centre: tuple[float, float] | None = None,
                crop_pixels: float | None = None) -> np.ndarray:
    """Crop a square around ``centre`` and resize it to ``size`` x ``size``.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, C)`` uint8 or float image.
    size : int
        Output side in pixels.
    crop_fraction : float
        Crop side as a fraction of the shorter image side (paper: 200/424).
    centre : (x, y), optional
        Crop centre in pixel coordinates, (x, y) order, pixel centres at integers;
        default the image centre. Regions outside the image are zero-filled.
    crop_pixels : float, optional
        Crop side in pixels; overrides ``crop_fraction``.

    Returns
    -------
    numpy.ndarray
        ``(size, size, C)`` float32 in [0, 1].
    """
    h, w = image.shape[:2]
    side = crop_pixels if crop_pixels is not None else crop_fraction * min(h, w)
    cx, cy = ((w - 1) / 2, (h - 1) / 2) if centre is None else centre
    # PIL box is in pixel-edge coordinates: pixel i spans [i, i+1).
    box = (cx + 0.5 - side / 2, cy + 0.5 - side / 2, cx + 0.5 + side / 2, cy + 0.5 + side / 2)
    if image.dtype == np.uint8 and image.shape[2] == 3:
        out = pillow_rgb(image).resize((size, size), Image.Resampling.BILINEAR, box=box)
        # RGB packed by Pillow (slicing RGBX in numpy would be a slow strided copy, here or
        # where the batch is stacked)
        return to_unit_float(np.asarray(out.convert("RGB") if out.mode != "RGB" else out))
    planes = []
    unit = to_unit_float(image)
    for c in range(unit.shape[2]):
        pil = Image.fromarray(np.ascontiguousarray(unit[:, :, c]), "F")
        planes.append(np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR, box=box)))
    return np.clip(np.stack(planes, axis=2), 0.0, 1.0).astype(np.float32)


class CentreCrop(CentringStep):
    """``--centring centre-crop``: the paper's validation transform (no re-centring).

    Parameters
    ----------
    crop_fraction : float
        Crop side as a fraction of the shorter image side (paper: 200/424).
    """

    def __init__(self, crop_fraction: float = PAPER_CROP_FRACTION) -> None:
        if not 0 < crop_fraction <= 1:
            raise UserError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.crop_fraction = crop_fraction

    def min_input_side(self, size: int) -> int:
        """Smallest source image side that still gives the crop ``size`` pixels."""
        return int(np.ceil(size / self.crop_fraction))

    def __call__(self, cutout: Cutout, size: int) -> Prepared:
        if cutout.image is None:
            return Prepared(None, cutout.flags, message=cutout.message)
        flags = cutout.flags
        if cutout.image.dtype != np.uint8 and not np.all(np.isfinite(cutout.image)):
            flags |= MorphFlag.NAN_PIXELS
        return Prepared(crop_resize(cutout.image, size, self.crop_fraction,
                                    centre=cutout.meta.get("position")), flags,
                        message=cutout.message)


@hookimpl
def astromorph_register_centring(register):
    register("centre-crop", CentreCrop,
             "paper's validation transform: centre crop 200/424 of the image, resize")
