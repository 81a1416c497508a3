#!/usr/bin/env bash
# The GPU check for a session that is lent a device machine (docs/performance.md, "GPU"),
# and GPU training runs for docs/results.md.
# The device has python3 3.12 with CUDA torch, onnxruntime, pillow, pluggy, click, tqdm and
# safetensors, but no astropy or simplejpeg, and no ../shared: `prepare` puts their wheels,
# BENCH_N (default 200) Galaxy Zoo JPEGs for the benchmark and small copies of gz1 for
# training (scripts/device_copies.py, zipped) into .device/ (git-ignored, ~46 MB: the working
# tree that travels must stay under 64 MiB), which the run carries.
#   here:        bash benchmarks/device_check.sh prepare
#                (and a jobs file .device/jobs for `train`: lines `NAME|compare options`)
#   device tool: run(command="bash benchmarks/device_check.sh run",
#                    carry=[".device/whl", ".device/images"], timeout_s=300)
#                (about 220 s at the default --n 50000; the gz1 copies are for `train` only,
#                and carrying all of .device went over the 64 MiB a call may carry)
#   or training: run(command="TRAIN_UNTIL=$(( $(date +%s) + 500 )) bash "
#                    "benchmarks/device_check.sh train", carry=[".device"], timeout_s=570)
#   (on 2026-11-28 the two shared one call and `run`, given 130 s, did not finish: give it
#   a call of its own; `train` carries [".device/whl", ".device/gz1", ".device/jobs"])
#   here:        python -m benchmarks.gpu --apply <files_at>/gpu.md   (then commit)
# Arguments after `run` go to benchmarks.gpu. `train` runs every job of .device/jobs at once,
# each an `astromorph compare` on the gz1 copies (`--device cuda`) into its own folder, stops
# them at TRAIN_UNTIL (seconds since the epoch; default 400 s from its start) and puts every
# job's folder (model files, JSON reports, log; no checkpoints) into $OUT/train.tar.part-*.
# A job cut off at TRAIN_UNTIL keeps its checkpoint on the machine: the same compare command
# run again there (while it is warm) resumes it.
# Rehearsal on a CPU machine, in a venv that holds
# only what the device has (torch, onnxruntime, pillow, pluggy, click, tqdm, safetensors,
# onnx, numpy, pyarrow, pyyaml, packaging; python 3.11 here):
#   PYVER=3.11 bash benchmarks/device_check.sh prepare
#   PATH=venv/bin:$PATH OUT=/tmp/out SITE=/tmp/site311 bash benchmarks/device_check.sh run \
#       --device cpu --n 300 --batches 32 --repeats 2
#   PATH=venv/bin:$PATH OUT=/tmp/out SITE=/tmp/site311 DEVICE=cpu \
#       bash benchmarks/device_check.sh train   (with a jobs file of tiny runs)
# then `prepare` again without PYVER before the real run (it replaces the wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

# dask.distributed and what it needs beyond the device's own packages (torch brings jinja2
# and fsspec), for the `--dask local:N` rows of benchmarks.gpu
DASK_WHEELS="dask distributed cloudpickle partd locket toolz tblib zict sortedcontainers msgpack psutil tornado"

setup_device() {
  # the wheels the device image lacks, installed once per machine; then what the GPU is
  site="${SITE:-/tmp/site}"
  export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
  python3 -c 'import astropy, simplejpeg, distributed' 2>/dev/null || python3 -m pip install -q \
    --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .device/whl/*.whl
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
}

case "${1:-}" in
prepare)
  rm -rf .device/whl .device/images .device/gz1
  mkdir -p .device/whl .device/images
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .device/whl \
    "astropy==$(python3 -c 'import astropy; print(astropy.__version__)')" \
    pyerfa astropy-iers-data "simplejpeg==$(python3 -c 'import simplejpeg; print(simplejpeg.__version__)')" \
    $(python3 -c "from importlib.metadata import version as v; print(' '.join(f'{p}=={v(p)}' for p in '$DASK_WHEELS'.split()))")
  find ../shared/data/galaxyzoo/images -name '*.jpg' | sort | sed -n "1,${BENCH_N:-200}p" \
    | xargs cp -t .device/images
  python3 scripts/device_copies.py ../shared/data/gz1/labels.csv \
    --image-dir ../shared/data/gz1/images --id-column OBJID -o .device/gz1
  # one stored zip: 6,664 small files would cost a disk block each in transit
  (cd .device/gz1 && python3 -m zipfile -c images.zip images && rm -r images)
  du -sb .device
  ;;
run)
  shift
  setup_device
  export ASTROMORPH_CACHE="$site/astromorph-cache"
  # 50,000 rows unless the options name --n (named twice, the recorded command misleads)
  case " $* " in *" --n "* | *" --n="*) ;; *) set -- --n 50000 "$@" ;; esac
  python3 -m benchmarks.gpu --image-dir .device/images --out "$OUT/gpu.md" "$@" \
    2>&1 | tee "$OUT/gpu.log"
  # where decoding threads stop scaling (docs/performance.md, "GPU"): about 30 s
  python3 -m benchmarks.threads --image-dir .device/images --threads 1,2,4,8,16 \
    2>&1 | tee "$OUT/threads.md"
  ;;
train)
  until="${TRAIN_UNTIL:-$(( $(date +%s) + 400 ))}"
  setup_device
  runs="${RUNS:-/tmp/runs}"
  mkdir -p "$runs"
  [ -d .device/gz1/images ] || (cd .device/gz1 && python3 -m zipfile -e images.zip .)
  while IFS='|' read -r name opts; do
    [ -n "$name" ] || continue
    # shellcheck disable=SC2086  # the options are words
    timeout $(( until - $(date +%s) )) python3 -m astro_morph compare .device/gz1/labels.csv \
      --image-dir .device/gz1/images --id-column OBJID --device "${DEVICE:-cuda}" \
      -o "$runs/$name" $opts >"$runs/$name.log" 2>&1 &
  done < .device/jobs
  wait || true
  for name in $(cut -d'|' -f1 .device/jobs); do
    tail -n 3 "$runs/$name.log"; cp "$runs/$name.log" "$runs/$name/" 2>/dev/null || true
  done
  # $OUT gives back files of at most 16 MiB: one tar of every job, cut into 15 MiB parts
  # (here: cat train.tar.part-* | tar -x). A model file with its ONNX graph is 8.5 MB for G3,
  # and 64 MiB come back in all, so at most seven G3 jobs fit in a call.
  names=$(cut -d'|' -f1 .device/jobs)
  # shellcheck disable=SC2086  # one word per job; a job that made no folder is skipped
  (cd "$runs" && tar -cf - --exclude='*.ckpt' $names | split -b 15M - "$OUT/train.tar.part-") \
    || true
  ls -la "$OUT"
  ;;
*)
  echo "usage: $0 prepare|run|train" >&2
  exit 2
  ;;
esac
