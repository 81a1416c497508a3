import subprocess
import sys


def test_import_does_not_import_torch():
    code = ("import sys, astro_morph, astro_morph.cli, astro_morph.plugins;"
            "astro_morph.plugins.load_plugins();"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
