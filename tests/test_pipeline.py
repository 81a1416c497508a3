"""The chunked run: decoding overlaps inference, errors cross the thread, order is kept."""

import threading

import numpy as np
import pytest
from astropy.table import Table

from astro_morph import pipeline
from astro_morph.centring.crop import CentreCrop
from astro_morph.sources.base import Cutout, Source


class FakeSource(Source):
    """Rows ``i`` give an image of value ``i % 251`` (one corner pixel off, outside the centre
    crop, so it is not blank); records which rows were fetched."""

    def __init__(self, fail_at: int | None = None, error: type = OSError) -> None:
        super().__init__()
        self.error = error
        self.fetched: list[int] = []
        self.fail_at = fail_at
        self.second_chunk_started = threading.Event()

    def fetch(self, rows: Table) -> list[Cutout]:
        ids = [int(v) for v in rows["id"]]
        if self.fail_at is not None and self.fail_at in ids:
            raise self.error(f"disk gone at row {self.fail_at}")
        self.fetched += ids
        if ids[0] >= 8:
            self.second_chunk_started.set()
        return [Cutout(_image(i % 251)) for i in ids]


def _image(value: int) -> np.ndarray:
    image = np.full((16, 16, 3), value, np.uint8)
    image[0, 0] = value + 1
    return image


class FakeClassifier:
    """Probabilities from the mean pixel, so each row's output tells which image it saw."""

    class_names = ["a", "b"]
    input_size = 8

    def __init__(self, wait_for: threading.Event | None = None) -> None:
        self.wait_for = wait_for
        self.overlapped: list[bool] = []

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self.wait_for is not None:
            # The next chunk's rows are fetched while this one is classified.
            self.overlapped.append(self.wait_for.wait(timeout=10))
            self.wait_for = None
        m = images.mean(axis=(1, 2, 3))
        return np.stack([m, 1 - m], axis=1).astype(np.float32)


@pytest.fixture
def small_slices(monkeypatch):
    monkeypatch.setattr(pipeline, "FETCH_ROWS", 4)


def test_next_chunk_is_prepared_while_the_classifier_runs(small_slices):
    src = FakeSource()
    clf = FakeClassifier(wait_for=src.second_chunk_started)
    table = Table({"id": np.arange(20)})
    res = pipeline.run_chunks(table, src, CentreCrop(), clf, chunk_size=8, progress=False)
    assert clf.overlapped == [True]
    assert src.fetched == list(range(20))
    np.testing.assert_allclose(res.probs[:, 0], (np.arange(20) % 251) / 255, atol=1e-6)
    assert not res.flags.any()


def test_source_user_error_reaches_the_caller_and_the_thread_stops(small_slices):
    from astro_morph.errors import UserError

    src = FakeSource(fail_at=13, error=UserError)
    with pytest.raises(UserError, match="disk gone at row 13"):
        pipeline.run_chunks(Table({"id": np.arange(20)}), src, CentreCrop(),
                            FakeClassifier(), chunk_size=8, progress=False)
    assert not any(t.name == "astromorph-prefetch" for t in threading.enumerate())


def test_a_source_that_raises_costs_its_row_not_the_run(small_slices):
    """A plugin source breaking its contract (raising for one row) gets that row flagged
    PREPARE_FAILED with the error named; its slice is refetched row by row."""
    from astro_morph.flags import MorphFlag

    res = pipeline.run_chunks(Table({"id": np.arange(20)}), FakeSource(fail_at=13),
                              CentreCrop(), FakeClassifier(), chunk_size=8, progress=False)
    assert res.flags[13] == MorphFlag.PREPARE_FAILED and np.isnan(res.probs[13]).all()
    assert res.messages == [(13, "source raised OSError: disk gone at row 13")]
    ok = np.arange(20) != 13
    assert not res.flags[ok].any()
    np.testing.assert_allclose(res.probs[ok, 0], np.arange(20)[ok] / 255, atol=1e-6)
    # A one-row slice (a one-row catalog, or the last slice) is flagged the same way.
    one = pipeline.run_chunks(Table({"id": [13]}), FakeSource(fail_at=13), CentreCrop(),
                              FakeClassifier(), progress=False)
    assert list(one.flags) == [MorphFlag.PREPARE_FAILED]


def test_a_centring_step_that_raises_costs_its_row_not_the_run(small_slices):
    from astro_morph.flags import MorphFlag

    class Fussy(CentreCrop):
        def __call__(self, cutout, size):
            if cutout.image[8, 8, 0] == 5:
                raise ValueError("cannot centre\nthis one")
            return super().__call__(cutout, size)

    res = pipeline.run_chunks(Table({"id": np.arange(12)}), FakeSource(), Fussy(),
                              FakeClassifier(), chunk_size=8, progress=False)
    assert list(np.flatnonzero(res.flags)) == [5]
    assert res.flags[5] == MorphFlag.PREPARE_FAILED
    assert res.messages == [(5, "centring step raised ValueError: cannot centre this one")]


@pytest.mark.parametrize("image, reason", [
    (np.zeros((64, 64, 3), np.uint8), "blank"),  # a survey's answer off its footprint
    (np.full((64, 64, 3), (10, 20, 30), np.uint8), "blank"),  # one colour, not one value
    (np.full((64, 64, 3), np.nan, np.float32), "blank"),
    (np.dstack([np.where(np.eye(64) > 0, np.nan, 0.3)] * 3).astype(np.float32), "blank"),
    (np.arange(15, dtype=np.uint8).reshape(1, 5, 3), "5x1 pixels, under 8"),
])
def test_blank_or_tiny_images_are_flagged_not_classified(image, reason):
    from astro_morph.flags import MorphFlag

    class One(Source):
        def fetch(self, rows):
            return [Cutout(image, meta={"origin": "x.png"}), Cutout(_image(7))]

    res = pipeline.run_chunks(Table({"id": [0, 1]}), One(), CentreCrop(), FakeClassifier(),
                              progress=False)
    assert list(res.flags) == [MorphFlag.IMAGE_BLANK, 0]
    assert np.isnan(res.probs[0]).all() and np.isfinite(res.probs[1]).all()
    assert res.messages[0][0] == 0 and res.messages[0][1].startswith("x.png: image is ")
    assert reason in res.messages[0][1]


def test_an_image_with_any_structure_is_not_blank():
    noisy = np.full((400, 400, 3), 12, np.uint8)
    noisy[201, 203, 1] = 13  # one pixel, missed by the sparse first look
    assert pipeline.unusable_image(noisy) is None
    assert pipeline.unusable_image(noisy[:8, :8]) is not None
    assert pipeline.unusable_image(np.full((8, 8, 3), 3, np.uint8)) is not None


def test_classifier_error_stops_the_prefetch_thread(small_slices):
    class Broken(FakeClassifier):
        def predict(self, images):
            raise RuntimeError("out of memory")

    src = FakeSource()
    with pytest.raises(RuntimeError, match="out of memory"):
        pipeline.run_chunks(Table({"id": np.arange(400)}), src, CentreCrop(), Broken(),
                            chunk_size=8, progress=False)
    assert not any(t.name == "astromorph-prefetch" for t in threading.enumerate())
    # Bounded read-ahead: the thread stopped about one chunk past the failed one.
    assert len(src.fetched) <= 8 + 8 + 4


def test_wrong_cutout_count_is_an_error(small_slices):
    class Short(FakeSource):
        def fetch(self, rows):
            return super().fetch(rows)[:-1]

    with pytest.raises(RuntimeError, match="source returned 3 cutouts for 4 rows"):
        pipeline.run_chunks(Table({"id": np.arange(8)}), Short(), CentreCrop(),
                            FakeClassifier(), chunk_size=8, progress=False)


def test_fused_decode_and_centring_match_the_two_phase_path(tmp_path):
    # GalaxyZooSource centres each row in the thread that decoded it; a source without
    # fuses_prepare gets its Cutouts centred afterwards. Same rows, same order, same flags.
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from astro_morph.sources.galaxyzoo import GalaxyZooSource
    from conftest import make_galaxy_image

    for i in range(1, 40):
        Image.fromarray(make_galaxy_image(96, seed=i)).save(tmp_path / f"{i}.jpg")
    (tmp_path / "40.jpg").write_bytes(b"not a jpeg")
    ids = [*range(1, 41), 99, *range(39, 0, -3)]  # a broken file, a missing one, repeats
    rows = Table({"GalaxyID": ids})
    src = GalaxyZooSource(image_dir=tmp_path, workers=3)
    serial = GalaxyZooSource(image_dir=tmp_path, workers=1)

    class TwoPhase(Source):  # the same files, one row after another, centred afterwards
        def fetch(self, rows):
            return serial.fetch(rows)

    step = CentreCrop()
    with ThreadPoolExecutor(3) as pool:
        fused = pipeline._fetch_prepare(rows, src, step, 24, pool)
        apart = pipeline._fetch_prepare(rows, TwoPhase(), step, 24, pool)
    assert len(fused) == len(apart) == len(ids)
    for f, a in zip(fused, apart, strict=True):
        assert (f.flags, f.message) == (a.flags, a.message)
        assert (f.image is None) == (a.image is None)
        if f.image is not None:
            np.testing.assert_array_equal(f.image, a.image)
    assert sum(p.image is None for p in fused) == 2
    assert not np.array_equal(fused[0].image, fused[1].image)  # seeds differ: order matters


def test_workers_option_sets_the_sources_decoding_threads(image_dir, tiny_model, monkeypatch):
    import astro_morph
    from astro_morph.sources.base import decode_threads
    from astro_morph.sources.galaxyzoo import GalaxyZooSource

    seen = []
    real = GalaxyZooSource.fetch_prepared
    monkeypatch.setattr(GalaxyZooSource, "fetch_prepared",
                        lambda self, rows, prepare: seen.append(self.workers) or
                        real(self, rows, prepare))
    cat = Table({"GalaxyID": [1, 2, 3]})
    astro_morph.classify(cat, image_dir=image_dir, model=tiny_model, progress=False, workers=3)
    astro_morph.classify(cat, image_dir=image_dir, model=tiny_model, progress=False)
    assert seen == [3, decode_threads()]


@pytest.mark.parametrize("bad", [{"chunk_size": 0}, {"workers": -1}, {"batch_size": 0},
                                 {"chunk_size": 2.5}, {"max_pixels": 0}])
def test_api_refuses_counts_below_one_in_one_line(bad, image_dir, tiny_model):
    """The CLI's click ranges, for API callers: chunk_size=0 ended in range()'s ValueError,
    and workers/batch_size/max_pixels of 0 or less ran on, or flagged every row."""
    import astro_morph
    from astro_morph.errors import UserError

    key = next(iter(bad))
    with pytest.raises(UserError, match=f"{key}(=| must be).*{bad[key]}"):
        astro_morph.classify(Table({"GalaxyID": [1]}), image_dir=image_dir, model=tiny_model,
                             progress=False, **bad)
