"""Shared fixtures: small model files and image folders made by the tests themselves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of a ../shared/data folder, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (it lives in ../shared beside the checkout)")
    return path


def load_script(name: str):
    """``scripts/<name>.py`` as a module (the scripts are not a package), for their tests."""
    import importlib.util

    path = Path(__file__).resolve().parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_addoption(parser):
    parser.addoption("--remote-data", action="store_true",
                     help="run tests marked remote_data (they need the live network)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--remote-data"):
        return
    skip = pytest.mark.skip(reason="needs the network; run with --remote-data")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained EfficientNet-G0 model file (5 GZ1 classes) with its ONNX graph."""
    import torch

    from astro_morph.inference.deploy import export_onnx
    from astro_morph.models.arch import G0
    from astro_morph.models.efficientnet_g import build_model
    from astro_morph.models.model_file import write_bundle
    from astro_morph.models.torch_io import bundle_from_network

    torch.manual_seed(0)
    classes = ["elliptical", "spiral", "edge_on", "merger", "dont_know"]
    bundle = bundle_from_network(build_model(G0, len(classes)).eval(), "tiny-g0", classes)
    bundle.onnx = export_onnx(bundle)
    path = tmp_path_factory.mktemp("models") / "tiny-g0.amz"
    write_bundle(bundle, path)
    return path


def make_galaxy_image(size: int = 64, seed: int = 0, centre: tuple[float, float] | None = None
                      ) -> np.ndarray:
    """A synthetic RGB galaxy: an elliptical Gaussian blob plus noise, uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    cx, cy = centre or ((size - 1) / 2, (size - 1) / 2)
    r2 = ((x - cx) / (size / 8)) ** 2 + ((y - cy) / (size / 12)) ** 2
    colour = np.array([1.0, 0.9, 0.7])
    img = 200 * np.exp(-r2)[:, :, None] * colour + rng.normal(10, 3, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def image_dir(tmp_path) -> Path:
    """A folder of five synthetic JPEGs named 1.jpg .. 4.jpg and 5.jpeg."""
    from PIL import Image

    d = tmp_path / "images"
    d.mkdir()
    for i in range(1, 6):
        ext = ".jpeg" if i == 5 else ".jpg"
        Image.fromarray(make_galaxy_image(64, seed=i)).save(d / f"{i}{ext}")
    return d


@pytest.fixture(scope="session")
def _test_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("astromorph_cache")


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch, _test_cache):
    # Cutout responses and ONNX exports go to a test-only cache, never the user's.
    monkeypatch.setenv("ASTROMORPH_CACHE", str(_test_cache))


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch):
    # Tests never load installed entry points (llm's conftest does the same).
    monkeypatch.setenv("ASTROMORPH_LOAD_PLUGINS", os.environ.get("ASTROMORPH_TEST_PLUGINS", ""))
