import subprocess
import sys

from astropy.table import Table


def test_import_does_not_import_torch():
    code = ("import sys, astro_morph, astro_morph.cli, astro_morph.plugins;"
            "astro_morph.plugins.load_plugins();"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_classify_with_a_cached_onnx_graph_does_not_import_torch(tiny_model, image_dir,
                                                                 tmp_path, monkeypatch):
    # A weights-only model file: the first run exports ONNX (torch), later runs read the
    # cached graph and must not pay torch's import (~1 s, ~300 MB).
    from astro_morph.models.model_file import read_bundle, write_bundle

    bundle = read_bundle(tiny_model)
    bundle.onnx = None
    model = tmp_path / "weights-only.amz"
    write_bundle(bundle, model)
    Table({"GalaxyID": [1, 2]}).write(tmp_path / "cat.csv")
    monkeypatch.setenv("ASTROMORPH_CACHE", str(tmp_path / "cache"))  # starts empty
    code = ("import sys; from astro_morph.cli import main\n"
            f"sys.argv = ['astromorph', 'classify', {str(tmp_path / 'cat.csv')!r}, "
            f"'--image-dir', {str(image_dir)!r}, '--model', {str(model)!r}, '-o', "
            f"sys.argv[1], '--no-progress']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('torch' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path / f"out{i}.fits")],
                           capture_output=True, text=True, check=True).stdout.split()[-1]
            for i in range(2)]
    assert runs == ["True", "False"]
