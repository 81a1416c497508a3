import threading
import time

import numpy as np
import pytest

from astro_morph.errors import UserError
from astro_morph.inference.load import classifier_from_file, load_model


def test_onnx_and_torch_agree(tiny_model):
    rng = np.random.default_rng(0)
    x = rng.random((7, 32, 32, 3), dtype=np.float32)
    onnx = classifier_from_file(tiny_model, "onnx", batch_size=3)
    torch_ = classifier_from_file(tiny_model, "torch", batch_size=4)
    a, b = onnx.predict(x), torch_.predict(x)
    assert a.shape == (7, 5) and a.dtype == np.float32
    np.testing.assert_allclose(a.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert onnx.predict(x[:0]).shape == (0, 5)


def test_onnx_exported_on_the_fly_when_missing(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROMORPH_CACHE", str(tmp_path / "cache"))
    from astro_morph.models.model_file import read_bundle, write_bundle

    b = read_bundle(tiny_model)
    b.onnx = None
    path = tmp_path / "noonnx.amz"
    write_bundle(b, path)
    x = np.full((2, 32, 32, 3), 0.5, np.float32)
    np.testing.assert_allclose(classifier_from_file(path, "onnx").predict(x),
                               classifier_from_file(tiny_model, "onnx").predict(x), atol=1e-6)
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert [p.stem for p in cached] == [read_bundle(path).sha256]


def test_cuda_without_gpu_is_a_user_error(tiny_model):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="no CUDA GPU"):
        classifier_from_file(tiny_model, "torch", device="cuda")


@pytest.mark.parametrize("device", ["gpu", "cuda:abc", "mps", ""])
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_device_string_torch_cannot_use_is_one_line(tiny_model, device, backend):
    """torch raised a RuntimeError traceback for 'gpu' and took 'mps' only to fail later."""
    with pytest.raises(UserError, match="expected cpu, cuda, cuda:N or auto"):
        load_model(tiny_model, backend, device=device)


def test_onnx_asked_for_cuda_without_a_provider_says_it_runs_on_the_cpu(tiny_model, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    clf = load_model(tiny_model, "onnx", device="cuda")
    assert clf.predict(np.zeros((1, clf.input_size, clf.input_size, 3), np.float32)).shape[0] == 1
    assert "no CUDA provider, so the ONNX backend runs on the CPU" in caplog.text


def test_unknown_model_and_backend(tiny_model):
    with pytest.raises(UserError, match="unknown model 'nope'"):
        load_model("nope")
    with pytest.raises(UserError, match="unknown backend"):
        classifier_from_file(tiny_model, "tensorflow")


def test_onnx_batches_run_concurrently_in_order(tiny_model, monkeypatch):
    from astro_morph.inference.onnx_backend import OnnxClassifier
    from astro_morph.models.model_file import read_bundle

    x = np.random.default_rng(1).random((37, 32, 32, 3), dtype=np.float32)
    one = OnnxClassifier(read_bundle(tiny_model), batch_size=5, threads=1)
    many = OnnxClassifier(read_bundle(tiny_model), batch_size=5, threads=3)
    assert (one.streams, many.streams) == (1, 3)
    seen = set()
    real = many._run

    def run(batch):
        seen.add(threading.get_ident())
        time.sleep(0.02)  # long enough that every stream picks up a batch
        return real(batch)

    monkeypatch.setattr(many, "_run", run)
    # Same single-threaded kernels on every stream: identical, in catalog order.
    np.testing.assert_array_equal(many.predict(x), one.predict(x))
    assert len(seen) > 1
    assert OnnxClassifier(read_bundle(tiny_model)).batch_size == 32  # CPU default


def test_torch_default_batch_is_small_on_cpu(tiny_model):
    assert classifier_from_file(tiny_model, "torch").batch_size == 32


def test_edited_config_is_a_new_model_for_the_onnx_cache(tiny_model, tmp_path):
    """A directory model without model.onnx is exported once and cached by its identity;
    editing config.json (the temperature) must give a new export, new probabilities and a
    new MORPHSHA, not the cached graph of the old config."""
    import json
    import zipfile

    from astro_morph.inference.load import classifier_from_file

    d = tmp_path / "model"
    with zipfile.ZipFile(tiny_model) as zf:
        zf.extractall(d)
    (d / "model.onnx").unlink()
    x = np.random.default_rng(1).random((4, 32, 32, 3), dtype=np.float32)
    before = classifier_from_file(d, "onnx")
    p_before = before.predict(x)
    cfg = json.loads((d / "config.json").read_text())
    cfg["temperature"] = 0.05
    (d / "config.json").write_text(json.dumps(cfg))
    after = classifier_from_file(d, "onnx")
    assert after.sha256 != before.sha256
    after.predict(x)
    from astro_morph.inference.onnx_backend import cache_dir

    old, new = (cache_dir() / f"{c.sha256}.onnx" for c in (before, after))
    assert old.is_file() and new.is_file()
    assert old.read_bytes() != new.read_bytes()  # the new temperature is in the new graph
    assert p_before.shape == (4, 5)


def test_tta_averages_the_eight_rotations_and_flips():
    from astro_morph.inference.tta import TTAClassifier, dihedral_views

    class Probe:  # "probability" = where the image's brightest pixel is, as a one-hot
        name, input_size, sha256, backend = "probe", 4, "x", "t"
        class_names = ["tl", "tr", "bl", "br"]

        def __init__(self):
            self.calls = 0

        def predict(self, images):
            self.calls += 1
            out = np.zeros((len(images), 4), np.float32)
            for i, im in enumerate(images):
                y, x = np.unravel_index(np.argmax(im[..., 0]), im.shape[:2])
                out[i, 2 * (y >= 2) + (x >= 2)] = 1
            return out

    img = np.zeros((1, 4, 4, 3), np.float32)
    img[0, 0, 0] = 1  # top-left corner
    img[0, 0, 1, 0] = 0.5  # its right neighbour: no diagonal symmetry left
    views = dihedral_views(img)
    assert len(views) == 8 and np.array_equal(views[0], img)
    assert len({v.tobytes() for v in views}) == 8  # all distinct for an asymmetric image
    probe = Probe()
    p = TTAClassifier(probe).predict(img)
    # The corner visits every quadrant twice over the 8 symmetries of the square.
    np.testing.assert_allclose(p, [[0.25, 0.25, 0.25, 0.25]])
    assert probe.calls == 8


def test_tta_is_recorded_in_provenance(tiny_model, image_dir):
    from astropy.table import Table

    from astro_morph import classify

    out = classify(Table({"GalaxyID": [1, 2]}), model=str(tiny_model), image_dir=image_dir,
                   tta=True)
    assert out.meta["MORPHTTA"].startswith("D4") and np.isfinite(out["morph_prob_spiral"]).all()
    assert "MORPHTTA" not in classify(Table({"GalaxyID": [1]}), model=str(tiny_model),
                                      image_dir=image_dir).meta


def test_ensemble_averages_its_members_and_refuses_mismatches():
    from astro_morph.errors import UserError
    from astro_morph.inference.ensemble import EnsembleClassifier

    class Fixed:
        input_size, backend = 4, "t"

        def __init__(self, name, p, classes=("a", "b")):
            self.name, self.sha256, self.p = name, name * 8, np.asarray(p, np.float32)
            self.class_names = list(classes)

        def predict(self, images):
            return np.tile(self.p, (len(images), 1))

    ens = EnsembleClassifier([Fixed("x", [1, 0]), Fixed("y", [0.5, 0.5]), Fixed("z", [0, 1])])
    np.testing.assert_allclose(ens.predict(np.zeros((2, 4, 4, 3))), [[0.5, 0.5]] * 2)
    assert ens.name == "x+y+z" and ens.sha256 != "x" * 8 and ens.class_names == ["a", "b"]
    # The same classes in another order are averaged class by class, not column by column.
    swapped = EnsembleClassifier([Fixed("x", [0.9, 0.1]), Fixed("y", [0.3, 0.7], ("b", "a"))])
    np.testing.assert_allclose(swapped.predict(np.zeros((1, 4, 4, 3))), [[0.8, 0.2]])
    assert swapped.class_names == ["a", "b"]
    with pytest.raises(UserError, match="has classes"):
        EnsembleClassifier([Fixed("x", [1, 0]), Fixed("y", [1, 0], ("a", "c"))])


def test_evaluate_scores_an_ensemble_of_model_files(tiny_model, tmp_path):
    """Two copies of one model: the ensemble's probabilities are that model's."""
    import shutil

    from astro_morph.training.evaluate import evaluate
    from conftest import shared_data

    data = shared_data("gz1")
    labels = tmp_path / "labels.csv"
    lines = (data / "labels.csv").read_text().splitlines()
    labels.write_text("\n".join(lines[:1] + [ln for ln in lines[1:] if ln.endswith(",test")][:8]))
    copy = tmp_path / "copy.amz"
    shutil.copy(tiny_model, copy)
    one = evaluate(tiny_model, labels, data / "images", timing=False, progress=False)
    two = evaluate([tiny_model, copy], labels, data / "images", timing=False, progress=False)
    assert two["members"] == 2 and one["members"] == 1
    assert two["confusion"] == one["confusion"] and two["ece"] == pytest.approx(one["ece"])



class _Recorder:
    """A classifier that keeps the images the pipeline hands it."""

    name, class_names, input_size, sha256, backend = "rec", ["a", "b"], 32, "0" * 64, "fake"

    def __init__(self, crop_fraction):
        self.crop_fraction = crop_fraction
        self.seen = []

    def predict(self, images):
        self.seen.append(np.array(images))
        return np.full((len(images), 2), 0.5, dtype=np.float32)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_classify_gives_a_model_the_crop_it_was_trained_on(tiny_model, tmp_path, image_dir,
                                                           backend):
    """A model file that records crop_fraction is classified on that crop unless the caller
    sets one; the TTA wrapper keeps it; an ensemble refuses members of two framings."""
    from astropy.table import Table
    from PIL import Image

    from astro_morph.api import classify
    from astro_morph.centring.crop import PAPER_CROP_FRACTION, crop_resize
    from astro_morph.inference.ensemble import EnsembleClassifier
    from astro_morph.inference.tta import TTAClassifier
    from astro_morph.models.model_file import read_bundle, write_bundle

    bundle = read_bundle(tiny_model)
    bundle.config.update(crop_fraction=0.3, name="cropped")
    path = tmp_path / "cropped.amz"
    write_bundle(bundle, path)
    clf = load_model(path, backend)
    assert clf.crop_fraction == 0.3 and TTAClassifier(clf).crop_fraction == 0.3
    assert load_model(tiny_model, backend).crop_fraction is None  # the paper's
    with pytest.raises(UserError, match="cropped was trained on centre crops of 0.3 of the "
                                        "image side, tiny-g0 on 0.4717"):
        EnsembleClassifier([load_model(tiny_model, backend), clf])

    ids = [1, 2, 3, 4]
    images = [np.asarray(Image.open(image_dir / f"{i}.jpg").convert("RGB")) for i in ids]

    def handed(model_crop, **centring):
        rec = _Recorder(model_crop)
        classify(Table({"GalaxyID": ids}), model=rec, image_dir=image_dir,
                 centring_options=centring or None)
        return np.concatenate(rec.seen)

    def cropped(crop):
        return np.stack([crop_resize(im, 32, crop) for im in images])

    np.testing.assert_array_equal(handed(0.3), cropped(0.3))
    np.testing.assert_array_equal(handed(0.3, crop_fraction=0.5), cropped(0.5))  # caller's
    np.testing.assert_array_equal(handed(None), cropped(PAPER_CROP_FRACTION))
    assert np.abs(cropped(0.3) - cropped(PAPER_CROP_FRACTION)).max() > 0.1


def test_allocation_failures_are_memory_errors_naming_the_batch(tiny_model, monkeypatch):
    """ORT's arena and torch's allocator fail with their own RuntimeErrors; classify turns a
    MemoryError into one line that says to lower --batch-size (the other errors pass)."""
    import onnxruntime

    onnx = load_model(tiny_model, "onnx")
    torch_clf = load_model(tiny_model, "torch")
    images = np.zeros((3, onnx.input_size, onnx.input_size, 3), np.float32)

    def ort_fails(self, *args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Failed to allocate memory for "
                           "requested buffer of size 1354752000")

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", ort_fails)
    with pytest.raises(MemoryError, match="ONNX Runtime could not allocate memory for a batch "
                                          "of 3 images"):
        onnx.predict(images)

    def torch_fails(x):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                           "1354752000 bytes")

    monkeypatch.setattr(torch_clf, "model", torch_fails)
    with pytest.raises(MemoryError, match="torch could not allocate memory for a batch of 3 "
                                          "images on cpu"):
        torch_clf.predict(images)

    def other(x):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(torch_clf, "model", other)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        torch_clf.predict(images)
