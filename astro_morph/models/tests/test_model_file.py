import hashlib
import json
import zipfile

import numpy as np
import pytest

from astro_morph.errors import UserError
from astro_morph.models.model_file import model_digest, read_bundle, write_bundle


def test_round_trip_and_sha(tiny_model, tmp_path):
    b = read_bundle(tiny_model)
    assert b.class_names[0] == "elliptical" and b.input_size == 32
    assert b.sha256 == hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    out = tmp_path / "copy.amz"
    write_bundle(b, out)
    with pytest.raises(UserError, match="exists"):
        write_bundle(b, out)
    assert read_bundle(out).weights == b.weights


def test_directory_layout(tiny_model, tmp_path):
    d = tmp_path / "dir"
    with zipfile.ZipFile(tiny_model) as zf:
        zf.extractall(d)
    b = read_bundle(d)
    assert b.sha256 == model_digest({p.name: p.read_bytes() for p in d.iterdir()})
    # The identity covers the config: an edited temperature is another model everywhere
    # (provenance, resume journal, ONNX cache), not only a change in the weights.
    cfg = json.loads((d / "config.json").read_text())
    cfg["temperature"] = 2.5
    (d / "config.json").write_text(json.dumps(cfg))
    edited = read_bundle(d)
    assert edited.sha256 != b.sha256 and edited.weights == b.weights


def test_a_file_of_a_model_folder_points_to_the_folder(tiny_model, tmp_path):
    d = tmp_path / "unzipped"
    with zipfile.ZipFile(tiny_model) as zf:
        zf.extractall(d)
    for name in ("weights.safetensors", "config.json"):
        with pytest.raises(UserError, match=f"part of the model folder {d}: pass --model {d}"):
            read_bundle(d / name)
    (tmp_path / "config.json").write_text("{}")  # no model folder around it: plain error
    with pytest.raises(UserError, match=r"not a readable model file \(File is not a zip"):
        read_bundle(tmp_path / "config.json")


def test_incompatible_version_is_refused(tiny_model, tmp_path):
    d = tmp_path / "dir"
    with zipfile.ZipFile(tiny_model) as zf:
        zf.extractall(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["format_version"] = 99
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="format version 99 is not supported"):
        read_bundle(d)


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04garbage"])
def test_garbage_is_a_user_error(tmp_path, content):
    f = tmp_path / "m.amz"
    f.write_bytes(content)
    with pytest.raises(UserError, match="m.amz"):
        read_bundle(f)


def test_weights_are_safetensors_not_pickle(tiny_model):
    with zipfile.ZipFile(tiny_model) as zf:
        names = set(zf.namelist())
        raw = zf.read("weights.safetensors")
    assert names == {"config.json", "weights.safetensors", "model.onnx"}
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    assert all(v["dtype"] in ("F32", "I64") for k, v in header.items() if k != "__metadata__")
    assert not raw.startswith(b"\x80")  # a pickle stream starts with PROTO 0x80
    np.testing.assert_equal(len(raw) > 1000, True)


def _edited(tiny_model, tmp_path, **changes):
    d = tmp_path / "dir"
    with zipfile.ZipFile(tiny_model) as zf:
        zf.extractall(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize("changes, message", [
    ({"input_size": 100000}, "input_size 100000 is outside 8-1024"),
    ({"input_size": "55"}, "input_size must be an integer"),
    ({"input_size": 55.5}, "input_size must be an integer"),
    ({"class_names": ["a", "b", "a", "c", "d"]}, "repeats class names a"),
    ({"class_names": []}, "class_names must be a non-empty list"),
    ({"temperature": -1}, "temperature must be a positive number"),
    ({"std": [0, 1, 1]}, "std must be positive"),
    ({"arch": {"name": "x", "blocks": [], "wings": 2}}, "arch is not a valid architecture"),
    ({"arch": {"name": "x", "blocks": ["e6_k5_s2_c40_n100000_se"]}}, "out of bounds"),
    ({"arch": {"name": "x", "blocks": ["e6_k4_s2_c40_n1_se"]}}, "kernel must be odd"),
])
def test_bad_config_is_refused_before_anything_is_built(tiny_model, tmp_path, changes, message):
    with pytest.raises(UserError, match=message):
        read_bundle(_edited(tiny_model, tmp_path, **changes))


def test_zip_member_that_inflates_past_the_limit_is_refused(tmp_path, monkeypatch):
    from astro_morph.models import model_file

    monkeypatch.setattr(model_file, "MAX_MEMBER_BYTES", 1 << 20)
    path = tmp_path / "bomb.amz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        with zf.open("weights.safetensors", "w") as fh:  # 4 MiB of zeros, ~4 kB on disk
            for _ in range(4):
                fh.write(bytes(1 << 20))
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(UserError, match="inflates to 4194304 bytes, over the 1 MiB limit"):
        read_bundle(path)


def test_damaged_weights_and_onnx_are_one_line_errors(tiny_model, tmp_path):
    from astro_morph.inference.load import classifier_from_file

    d = _edited(tiny_model, tmp_path)
    (d / "model.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(UserError, match="model.onnx cannot be loaded"):
        classifier_from_file(d, "onnx")
    (d / "weights.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{nope")
    with pytest.raises(UserError, match="weights.safetensors is damaged"):
        classifier_from_file(d, "torch")


def test_onnx_class_count_must_match_the_config(tiny_model, tmp_path):
    from astro_morph.inference.load import classifier_from_file

    d = _edited(tiny_model, tmp_path, class_names=["a", "b", "c"])
    with pytest.raises(UserError, match="gives 5 probabilities but config.json names 3"):
        classifier_from_file(d, "onnx")
