import hashlib
import json
import zipfile

import numpy as np
import pytest

from astro_morph.errors import UserError
from astro_morph.models.model_file import read_bundle, write_bundle


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
    assert b.sha256 == hashlib.sha256((d / "weights.safetensors").read_bytes()).hexdigest()


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
