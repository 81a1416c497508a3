"""scripts/*.py end bad input as astromorph does: one ``Error:`` line, status 1."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.mark.parametrize("args, message", [
    (["training_history.py", "{tmp}/m.amz"], "model file not found: {tmp}/m.amz"),
    (["prior_correction.py", "{tmp}/labels.txt", "--image-dir", "{tmp}", "{tmp}/m.amz"],
     "{tmp}/labels.txt: cannot tell the format from the suffix"),
    (["ship_default_model.py", "{tmp}/m.amz", "--name", "x"], "model file not found"),
    (["seed_summary.py", "{tmp}/r.json"], "{tmp}/r.json: cannot read it as a JSON report"),
    (["device_copies.py", "{tmp}/labels.csv", "--image-dir", "{tmp}", "--id-column", "OBJID",
      "-o", "{tmp}/out"], "{tmp}: no image for id 1"),
    (["clean_labels.py", "{tmp}/labels.csv", "{tmp}/morph.fits", "-o", "{tmp}/clean.csv"],
     "catalog not found: {tmp}/morph.fits"),
])
def test_bad_input_is_one_line_not_a_traceback(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    (tmp_path / "labels.txt").write_text("OBJID,label,split\n")
    (tmp_path / "labels.csv").write_text("OBJID,label,split\n1,spiral,train\n")
    done = subprocess.run([sys.executable, str(SCRIPTS / args[0]), *args[1:]],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert message.format(tmp=tmp_path) in done.stderr.strip().splitlines()[-1]
