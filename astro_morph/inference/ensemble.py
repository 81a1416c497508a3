"""Model ensembles: the mean of several classifiers' probabilities.

Used by ``astromorph evaluate --model A --model B ...`` to measure what averaging seeds buys
(the teacher for ``astromorph train --teacher``), and by ``train --teacher`` itself to make
the soft targets. Every member must have the same classes, input size and training crop, so
the pipeline crops once for all of them; a member that lists the classes in another order (a
model trained with ``--classes``, say) has its columns put in the first member's order.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..centring.crop import crop_or_paper
from ..errors import UserError
from ..models.base import Classifier, training_crop

__all__ = ["EnsembleClassifier"]


class EnsembleClassifier:
    """Mean probabilities of ``members`` (each a :class:`~astro_morph.models.base.Classifier`).

    The name lists the members; ``sha256`` is the digest of the members' digests in order,
    so an ensemble has one identity in provenance and journals.
    """

    def __init__(self, members: list[Classifier]) -> None:
        if not members:
            raise UserError("an ensemble needs at least one model")
        first = members[0]
        #: Each member's probability columns in the first member's class order.
        self._columns: list[list[int] | None] = [None]
        first_crop = crop_or_paper(training_crop(first))
        for m in members[1:]:
            if sorted(m.class_names) != sorted(first.class_names):
                raise UserError(f"ensemble: {m.name} has classes {list(m.class_names)}, "
                                f"{first.name} has {list(first.class_names)}")
            order = [list(m.class_names).index(c) for c in first.class_names]
            self._columns.append(None if order == sorted(order) else order)
            if m.input_size != first.input_size:
                raise UserError(f"ensemble: {m.name} takes {m.input_size} px, "
                                f"{first.name} takes {first.input_size} px")
            crop = crop_or_paper(training_crop(m))
            if crop != first_crop:
                raise UserError(f"ensemble: {m.name} was trained on centre crops of "
                                f"{crop:.4g} of the image side, {first.name} on "
                                f"{first_crop:.4g}")
        self.members = list(members)
        self.name = "+".join(m.name for m in members) if len(members) > 1 else first.name
        self.class_names = list(first.class_names)
        self.input_size = first.input_size
        self.crop_fraction = training_crop(first)
        self.sha256 = (first.sha256 if len(members) == 1 else hashlib.sha256(
            "".join(m.sha256 for m in members).encode()).hexdigest())
        self.backend = first.backend
        # Architecture figures (params, MACs) are those of one member.
        self.config = getattr(first, "config", None)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Mean probabilities ``(N, K)`` over the members."""
        from .tta import mean_probabilities

        return mean_probabilities(m.predict(images) if cols is None else m.predict(images)[:, cols]
                                  for m, cols in zip(self.members, self._columns, strict=True))
