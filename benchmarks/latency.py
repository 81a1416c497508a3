"""Does the latency table predict whole networks? ``python -m benchmarks.latency [--n 12]``.

Samples ``--n`` genotypes of the default search space (plus Table-2 G0), predicts each one's
ONNX Runtime latency from the per-op table (:mod:`astro_morph.search.latency`, measured on
first use and cached), measures the whole network the same way (batch 32, one thread), and
prints both with their rank correlation (Spearman) and the mean ratio measured / predicted.
"""

from __future__ import annotations

import argparse
import random


def main() -> None:
    import numpy as np

    from astro_morph.models.arch import G0
    from astro_morph.models.efficientnet_g import build_model
    from astro_morph.search.latency import LatencyTable, measure_seconds
    from astro_morph.search.space import DEFAULT_SPACE
    from benchmarks.__main__ import machine
    from benchmarks.arguments import count

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=count, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    space = DEFAULT_SPACE
    table = LatencyTable(space, 5)
    genotypes = [space.encode(G0)] + [[rng.randrange(k) for k in space.sizes]
                                      for _ in range(args.n)]
    rows = []
    for g in genotypes:
        predicted = table.predict(g)
        net = build_model(space.to_arch(g), 5)
        measured = measure_seconds(net, (3, space.resolution, space.resolution)) * 1e3
        rows.append((g, predicted, measured))
        print(f"{' '.join(b.to_string() for b in space.to_arch(g).blocks):60s} "
              f"predicted {predicted:.4f} ms  measured {measured:.4f} ms", flush=True)
    p = np.array([r[1] for r in rows])
    m = np.array([r[2] for r in rows])
    rank = np.corrcoef(np.argsort(np.argsort(p)), np.argsort(np.argsort(m)))[0, 1]
    print(f"\n{len(rows)} networks on {machine()}: Spearman {rank:.3f}, measured/predicted "
          f"{np.mean(m / p):.2f} (sd {np.std(m / p):.2f}); table: {table.path} "
          f"({len(table.ms)} ops)")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
