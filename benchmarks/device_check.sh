#!/usr/bin/env bash
# The GPU check for a session that is lent a device machine (docs/performance.md, "GPU").
# The device has python3 3.12 with CUDA torch, onnxruntime, pillow, pluggy, click, tqdm and
# safetensors, but no astropy or simplejpeg, and no ../shared: `prepare` puts their wheels and
# 2,000 Galaxy Zoo JPEGs into .device/ (git-ignored, ~35 MB), which the run carries.
#   here:        bash benchmarks/device_check.sh prepare
#   device tool: run(command="bash benchmarks/device_check.sh run", carry=[".device"],
#                    timeout_s=540)
#   here:        python -m benchmarks.gpu --apply <files_at>/gpu.md   (then commit)
# Arguments after `run` go to benchmarks.gpu. Rehearsal on a CPU machine, in a venv that holds
# only what the device has (torch, onnxruntime, pillow, pluggy, click, tqdm, safetensors,
# onnx, numpy, pyarrow, pyyaml, packaging; python 3.11 here):
#   PYVER=3.11 bash benchmarks/device_check.sh prepare
#   PATH=venv/bin:$PATH OUT=/tmp/out SITE=/tmp/site311 bash benchmarks/device_check.sh run \
#       --device cpu --n 300 --batches 32 --repeats 2
# then `prepare` again without PYVER before the real run (it replaces the wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
  rm -rf .device/whl
  mkdir -p .device/whl .device/images
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .device/whl \
    "astropy==$(python3 -c 'import astropy; print(astropy.__version__)')" \
    pyerfa astropy-iers-data "simplejpeg==$(python3 -c 'import simplejpeg; print(simplejpeg.__version__)')"
  find ../shared/data/galaxyzoo/images -name '*.jpg' | sort | sed -n '1,2000p' \
    | xargs cp -t .device/images
  du -sh .device
  ;;
run)
  shift
  site="${SITE:-/tmp/site}"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .device/whl/*.whl
  export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1 ASTROMORPH_CACHE="$site/astromorph-cache"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python3 -m benchmarks.gpu --image-dir .device/images --n 50000 --out "$OUT/gpu.md" "$@" \
    2>&1 | tee "$OUT/gpu.log"
  ;;
*)
  echo "usage: $0 prepare|run" >&2
  exit 2
  ;;
esac
