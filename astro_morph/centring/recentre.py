"""``--centring recentre``: re-centre on the galaxy with photutils before cropping.

The image is collapsed to one band, the background is estimated with sigma clipping, sources
are detected by image segmentation (and optionally deblended), and the segment nearest the
image centre gives the new centre (its background-subtracted first-moment centroid). The crop
is then the paper's crop around that centre.
"""

from __future__ import annotations

import numpy as np

from ..flags import MorphFlag
from ..hookspecs import hookimpl
from ..sources.base import Cutout
from .crop import PAPER_CROP_FRACTION, CentreCrop, Prepared, crop_resize

__all__ = ["Recentre", "find_centre"]


def find_centre(gray: np.ndarray, nsigma: float = 2.0, npixels: int = 10,
                deblend: bool = True, max_offset: float | None = None,
                reference: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Centroid (x, y) of the source nearest the image centre, or ``None`` when none is found.

    Parameters
    ----------
    gray : numpy.ndarray
        2-D image (NaNs are masked).
    nsigma : float
        Detection threshold above the sigma-clipped background, in background sigmas.
    npixels : int
        Minimum connected pixels for a detection.
    deblend : bool
        Split blended sources (photutils ``deblend_sources``) before choosing.
    max_offset : float, optional
        Ignore sources whose centroid is further than this from the centre (pixels).
    reference : (x, y), optional
        Where the galaxy should be (default: the image centre).
    """
    from astropy.convolution import convolve
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import (
        SourceCatalog,
        deblend_sources,
        detect_sources,
        make_2dgaussian_kernel,
    )

    mask = ~np.isfinite(gray)
    data = np.where(mask, 0.0, gray).astype(np.float64)
    _, median, std = sigma_clipped_stats(data, mask=mask, sigma=3.0)
    if not np.isfinite(std) or std <= 0:
        # A noiseless (e.g. quantised, flat-sky) background: fall back to the image scatter.
        std = float(np.std(data[~mask])) if (~mask).any() else 0.0
        if std <= 0:
            return None
    data = data - median
    # Detect on a smoothed image (photutils' recipe): single noisy pixels do not connect into
    # spurious segments. The smoothed noise is lower, so the same threshold is conservative.
    smooth = convolve(data, make_2dgaussian_kernel(3.0, size=5), mask=mask)
    segm = detect_sources(smooth, nsigma * std, npixels, mask=mask)
    if segm is None:
        return None
    if deblend:
        try:
            segm = deblend_sources(smooth, segm, npixels, progress_bar=False)
        except ValueError:
            pass  # deblending needs enough pixels; keep the undeblended map
    cat = SourceCatalog(data, segm, convolved_data=smooth, mask=mask)
    h, w = gray.shape
    cx, cy = reference or ((w - 1) / 2, (h - 1) / 2)
    # photutils 3 renamed xcentroid -> x_centroid; accept both.
    xs = np.asarray(_attr(cat, "x_centroid", "xcentroid"), dtype=float)
    ys = np.asarray(_attr(cat, "y_centroid", "ycentroid"), dtype=float)
    dist = np.hypot(xs - cx, ys - cy)
    # Prefer the segment that covers the centre pixel: a bright neighbour may be nearer in
    # centroid distance than a large galaxy's own centroid.
    iy, ix = int(round(cy)), int(round(cx))
    label = segm.data[iy, ix] if 0 <= iy < h and 0 <= ix < w else 0
    if label:
        i = int(np.flatnonzero(np.asarray(cat.labels) == label)[0])
    else:
        ok = np.isfinite(dist)
        if not ok.any():
            return None
        i = int(np.nanargmin(np.where(ok, dist, np.inf)))
    if not np.isfinite(dist[i]) or (max_offset is not None and dist[i] > max_offset):
        return None
    return float(xs[i]), float(ys[i])


def _attr(obj: object, new: str, old: str) -> object:
    return getattr(obj, new) if hasattr(type(obj), new) else getattr(obj, old)


class Recentre(CentreCrop):
    """Crop around the photutils centroid of the central source.

    Parameters
    ----------
    crop_fraction : float
        Crop side as a fraction of the shorter side (paper: 200/424).
    max_offset_fraction : float
        Offsets beyond this fraction of the shorter side set ``OFF_CENTRE`` and fall back to
        the geometric centre (the catalog position is more trustworthy than a far source).
    nsigma : float
        Detection threshold above the background, in background sigmas.
    """

    reports_offset = True

    def min_input_side(self, size: int) -> int | None:
        """``None``: offsets are in the source image's pixels, so no reduced-scale decoding."""
        return None

    def __init__(self, crop_fraction: float = PAPER_CROP_FRACTION,
                 max_offset_fraction: float = 0.15, nsigma: float = 2.0) -> None:
        super().__init__(crop_fraction)
        from ..errors import check_option

        check_option(0 <= max_offset_fraction <= 1, "centring 'recentre'", "max_offset_fraction",
                     max_offset_fraction, "a fraction of the image side in [0, 1]")
        check_option(nsigma > 0, "centring 'recentre'", "nsigma", nsigma,
                     "a detection threshold > 0 background sigmas")
        self.max_offset_fraction = max_offset_fraction
        self.nsigma = nsigma
        try:  # photutils deblends with scikit-image; say so before the run, not per row
            import skimage  # noqa: F401
        except ImportError:
            from ..errors import UserError

            raise UserError("--centring recentre needs scikit-image (photutils deblends "
                            "with it): pip install scikit-image") from None
        import warnings

        from photutils.utils.exceptions import NoDetectionsWarning

        # "No sources were found" is what RECENTRE_FAILED records per row; astropy's logger
        # would also print it once, as a bare WARNING line without the row. A filter, not
        # catch_warnings, because rows are centred in threads (catch_warnings is not safe).
        warnings.filterwarnings("ignore", category=NoDetectionsWarning)

    def __call__(self, cutout: Cutout, size: int) -> Prepared:
        if cutout.image is None:
            return Prepared(None, cutout.flags, message=cutout.message)
        image = cutout.image
        flags = cutout.flags
        gray = image.astype(np.float64).mean(axis=2)
        if not np.all(np.isfinite(gray)):
            flags |= MorphFlag.NAN_PIXELS
        h, w = gray.shape
        # Offsets are measured from the catalog position when the source knows where it
        # falls in the cutout, else from the image centre.
        geometric = cutout.meta.get("position") or ((w - 1) / 2, (h - 1) / 2)
        try:
            centre = find_centre(gray, nsigma=self.nsigma, reference=geometric)
        except Exception as exc:  # photutils on a pathological image: the row, not the run
            centre = None
            message = f"{cutout.message}; " if cutout.message else ""
            cutout = Cutout(cutout.image, cutout.flags, f"{message}re-centring failed: {exc}",
                            cutout.pixel_scale, cutout.meta)
        if centre is None:
            flags |= MorphFlag.RECENTRE_FAILED
            dx = dy = 0.0
            centre = geometric
        else:
            dx, dy = centre[0] - geometric[0], centre[1] - geometric[1]
            if np.hypot(dx, dy) > self.max_offset_fraction * min(h, w):
                flags |= MorphFlag.OFF_CENTRE
                centre = geometric
        out = crop_resize(image, size, self.crop_fraction, centre=centre)
        return Prepared(out, flags, dx=float(dx), dy=float(dy), message=cutout.message)


@hookimpl
def astromorph_register_centring(register):
    register("recentre", Recentre,
             "photutils segmentation centroid of the central source, then the paper's crop")
