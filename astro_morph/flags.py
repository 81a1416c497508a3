"""Per-row quality flags written to the ``morph_flags`` column.

A row with ``morph_flags == 0`` was classified normally. Any set bit says why the row's
classification is missing or should be treated with care; the bits are stable across versions
(new ones are only ever added).
"""

from __future__ import annotations

import enum

__all__ = ["MorphFlag", "FLAG_DESCRIPTIONS", "describe_flags", "flags_column_description"]


class MorphFlag(enum.IntFlag):
    """Bit flags of ``morph_flags``."""

    OK = 0
    IMAGE_MISSING = 1  # no image file / cutout for the row
    IMAGE_UNREADABLE = 2  # the image exists but could not be decoded
    BAD_ID = 4  # id or path cell empty, masked or not usable
    PATH_REFUSED = 8  # path column points outside the image directory
    BAD_COORDINATES = 16  # RA/Dec missing, NaN or out of range
    OUTSIDE_FOOTPRINT = 32  # position outside the mosaic / survey footprint
    NAN_PIXELS = 64  # blank or NaN pixels in the cutout (classified if enough remain)
    RECENTRE_FAILED = 128  # no source found near the centre; geometric centre used
    OFF_CENTRE = 256  # re-centred by more than the allowed offset
    DOWNLOAD_FAILED = 512  # network source gave up after retries
    CLASSIFY_FAILED = 1024  # the classifier raised or returned non-finite values
    SIZE_DEFAULTED = 2048  # size column missing/NaN/not positive: the fixed cutout size used
    IMAGE_BLANK = 4096  # decoded, but one value throughout or under 8 pixels a side
    PREPARE_FAILED = 8192  # the source or centring step raised for this row (a plugin bug)


#: Bits that mean "no classification": label and probabilities are blank for these rows.
FATAL_FLAGS = (
    MorphFlag.IMAGE_MISSING
    | MorphFlag.IMAGE_UNREADABLE
    | MorphFlag.BAD_ID
    | MorphFlag.PATH_REFUSED
    | MorphFlag.BAD_COORDINATES
    | MorphFlag.OUTSIDE_FOOTPRINT
    | MorphFlag.DOWNLOAD_FAILED
    | MorphFlag.CLASSIFY_FAILED
    | MorphFlag.IMAGE_BLANK
    | MorphFlag.PREPARE_FAILED
)

FLAG_DESCRIPTIONS: dict[MorphFlag, str] = {
    MorphFlag.IMAGE_MISSING: "image missing",
    MorphFlag.IMAGE_UNREADABLE: "image unreadable",
    MorphFlag.BAD_ID: "id/path empty or invalid",
    MorphFlag.PATH_REFUSED: "path outside image dir",
    MorphFlag.BAD_COORDINATES: "bad RA/Dec",
    MorphFlag.OUTSIDE_FOOTPRINT: "outside footprint",
    MorphFlag.NAN_PIXELS: "NaN/blank pixels",
    MorphFlag.RECENTRE_FAILED: "recentring found no source",
    MorphFlag.OFF_CENTRE: "source far off centre",
    MorphFlag.DOWNLOAD_FAILED: "download failed",
    MorphFlag.CLASSIFY_FAILED: "classifier failed",
    MorphFlag.SIZE_DEFAULTED: "size column invalid; fixed size used",
    MorphFlag.IMAGE_BLANK: "image blank or too small",
    MorphFlag.PREPARE_FAILED: "source/centring step raised",
}


def describe_flags(value: int) -> list[str]:
    """Names of the bits set in ``value``, e.g. ``describe_flags(3) == ['IMAGE_MISSING', ...]``."""
    return [f.name for f in FLAG_DESCRIPTIONS if value & f]


def flags_column_description() -> str:
    """The ``morph_flags`` column description: every bit with its meaning."""
    bits = "; ".join(f"{int(f)}={d}" for f, d in FLAG_DESCRIPTIONS.items())
    return f"0=ok; bits: {bits}"
