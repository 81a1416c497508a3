"""``astromorph rank``: does the supernet rank architectures as training them would?

A weight-sharing search is only as good as the agreement between a path's shared-weight score
and the accuracy of the same network trained alone. This samples architectures across the
space (evenly spaced in multiply-adds, so small and large nets are both in), scores each with
a search's supernet (batch norms recalibrated per path, on the whole validation split), trains
each stand-alone with one short recipe, and reports Kendall's tau between the two rankings
for every metric, with a scatter plot. Results are written after every architecture, so an
interrupted run continues where it stopped, and a check of another supernet in the same
folder (the same search after more iterations) reuses the stand-alone trainings.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write_text

__all__ = ["RankConfig", "sample_across", "rank", "kendall_table", "plot_ranking"]

#: Scores computed for every architecture, both with shared weights and stand-alone.
RANK_METRICS = ("likelihood", "accuracy", "balanced_accuracy", "macro_f1")


@dataclass
class RankConfig:
    """One ranking check (recorded in its JSON)."""

    labels: str
    image_dir: str
    supernet: str  # a search's output JSON; its checkpoint lies beside it
    output: str  # folder
    id_column: str = "OBJID"
    n: int = 12
    epochs: int = 6
    lr: float = 1e-3
    batch_size: int = 64
    seeds: tuple[int, ...] = (0,)
    sample_seed: int = 0
    threads: int | None = None
    limit: int | None = None


def sample_across(space: Any, n: int, num_classes: int, seed: int = 0,
                  pool: int = 4096) -> list[list[int]]:
    """``n`` distinct genotypes at evenly spaced quantiles of multiply-adds among ``pool``
    uniform draws: the sample spans the space from its smallest nets to its largest."""
    from ..models.flops import count

    rng = np.random.default_rng(seed)
    seen: dict[tuple, int] = {}
    for _ in range(pool):
        g = tuple(int(rng.integers(k)) for k in space.sizes)
        if g not in seen:
            seen[g] = count(space.to_arch(list(g)), num_classes, space.resolution).macs
    ordered = sorted(seen, key=lambda g: (seen[g], g))
    if n > len(ordered):
        raise UserError(f"the space gave only {len(ordered)} distinct genotypes")
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, n)).astype(int))
    return [list(ordered[i]) for i in picks]


def _scores(logits: Any, y: Any, k: int) -> dict[str, float]:
    from .enas import score_logits

    return {m: score_logits(logits, y, m, k) for m in RANK_METRICS}


def train_standalone(arch: Any, num_classes: int, train_x: np.ndarray, train_y: np.ndarray,
                     region: float, mean: Any, std: Any, epochs: int, lr: float,
                     batch_size: int, seed: int) -> Any:
    """Train ``arch`` from scratch with the trainer's augmentation and loss (Adam, cosine,
    sqrt class weights); returns the network in eval mode (last epoch, no selection)."""
    import torch
    import torch.nn.functional as F

    from ..models.efficientnet_g import build_model
    from ..training.augment import augment_batch
    from ..training.train import _class_weights

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = build_model(arch, num_classes).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    weights = _class_weights(train_y, num_classes, "sqrt")
    tx, ty = torch.from_numpy(train_x), torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    for _ in range(epochs):
        order = torch.randperm(len(tx), generator=gen)
        for i in range(0, len(tx), batch_size):
            idx = order[i:i + batch_size]
            x = augment_batch(tx[idx].permute(0, 3, 1, 2).float() / 255, arch.resolution,
                              region, generator=gen)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(x), ty[idx], weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return net.eval()


def kendall_table(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Kendall's tau (and its p-value) between the supernet's and the stand-alone ranking,
    for each shared-weight metric against each stand-alone metric (seed means)."""
    from scipy.stats import kendalltau

    out = {}
    for m in RANK_METRICS:
        for s in RANK_METRICS:
            a = [r["supernet"][m] for r in rows]
            b = [r["standalone_mean"][s] for r in rows]
            tau, p = kendalltau(a, b)
            # Undefined when one side's scores all tie (e.g. every net at the majority rate):
            # null, not NaN, which is not JSON.
            out[f"{m} vs {s}"] = ({"tau": float(tau), "p": float(p)} if np.isfinite(tau) else
                                  {"tau": None, "p": None})
    return out


def plot_ranking(rows: list[dict], taus: dict, path: str | os.PathLike,
                 shared: tuple[str, ...] = ("likelihood", "macro_f1"),
                 alone: tuple[str, ...] = ("accuracy", "macro_f1")) -> Path:
    """Stand-alone val scores (seed means, bars = spread) against the supernet's, one panel
    per pair, coloured by multiply-adds, each titled with its Kendall's tau."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(shared), len(alone), figsize=(5 * len(alone) + 1,
                             3.6 * len(shared)), layout="constrained", squeeze=False)
    macs = np.array([r["macs"] for r in rows]) / 1e6
    for i, m in enumerate(shared):
        x = [r["supernet"][m] for r in rows]
        for j, s in enumerate(alone):
            ax = axes[i][j]
            y = [r["standalone_mean"][s] for r in rows]
            err = [r["standalone_std"][s] for r in rows]
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor="0.6", lw=1)
            sc = ax.scatter(x, y, c=macs, cmap="viridis", zorder=3)
            ax.set_xlabel(f"supernet (shared weights): val {m}")
            ax.set_ylabel(f"stand-alone: val {s}")
            t = taus[f"{m} vs {s}"]
            ax.set_title("Kendall tau undefined (tied scores)" if t["tau"] is None else
                         f"Kendall tau {t['tau']:+.2f} (p {t['p']:.2f})", fontsize=9)
            ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=axes, label="MACs (M)")
    fig.suptitle(f"{len(rows)} architectures: supernet ranking vs stand-alone training",
                 fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def rank(cfg: RankConfig, progress: bool | None = None) -> dict[str, Any]:
    """Run the check; writes ``ranking.json`` and ``ranking.png`` in ``cfg.output``."""
    import torch
    from tqdm.auto import tqdm

    from ..models.flops import count
    from ..models.torch_io import checkpoint_errors
    from ..training.data import TRAIN_REGION, load_labels
    from .enas import _paths, load_splits, model_inputs, path_logits
    from .space import DEFAULT_SPACE
    from .supernet import SuperNet

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt = _paths(cfg.supernet)["ckpt"]
    if not ckpt.is_file():
        raise UserError(f"{cfg.supernet}: no search checkpoint at {ckpt} (run astromorph "
                        "search with this output first)")
    space = DEFAULT_SPACE
    with checkpoint_errors(ckpt, "a search checkpoint", "rerun astromorph search into "
                           f"{cfg.supernet}"):
        ck = torch.load(ckpt, weights_only=True)
        scfg = json.loads(ck["signature"])
        names = list(scfg["class_names"])
        net = SuperNet(space, len(names))
        net.load_state_dict(ck["net"])
        iterations = json.loads(ck["state"])["iteration"]

    size = space.resolution
    tr, va = load_splits(load_labels(cfg.labels, cfg.id_column), cfg.image_dir, names,
                         cfg.id_column, space, cfg.limit)
    # The search's normalisation and calibration batch (same images, same draws).
    mean, std, vx, calib = model_inputs(tr.images, va.images,
                                        int(scfg.get("bn_calibration", 512)), size,
                                        TRAIN_REGION, scfg["seed"])
    vy = torch.from_numpy(va.labels)
    k = len(names)

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "ranking.json"
    # Stand-alone results depend on the sample and the recipe, not on the supernet: a check
    # of another supernet (e.g. the same search, longer) in the same folder reuses them.
    # Seeds are kept per training, so adding a seed trains only that seed.
    settings = {key: v for key, v in asdict(cfg).items()
                if key not in ("output", "threads", "supernet", "seeds")}
    done: dict[str, dict[int, dict]] = {}
    if json_path.is_file():
        old = json.loads(json_path.read_text())
        saved = {key: v for key, v in old.get("settings", {}).items()
                 if key not in ("supernet", "seeds")}
        if saved == settings:
            for r in old["rows"]:
                done[json.dumps(r["genotype"])] = {
                    int(run.get("seed", s)): run for run, s in
                    zip(r["standalone"], old["settings"].get("seeds", [None] * 99), strict=False)}
    settings["seeds"] = list(cfg.seeds)
    genotypes = sample_across(space, cfg.n, k, cfg.sample_seed)
    rows = []
    for g in tqdm(genotypes, desc="rank", disable=None if progress is None else not progress):
        arch = space.to_arch(g)
        shared = _scores(path_logits(net, g, vx, calib), vy, k)
        trained = done.setdefault(json.dumps(g), {})
        for seed in cfg.seeds:
            if seed not in trained:
                alone = train_standalone(arch, k, tr.images, tr.labels, TRAIN_REGION, mean,
                                         std, cfg.epochs, cfg.lr, cfg.batch_size, seed)
                with torch.no_grad():
                    logits = alone(vx)
                if not bool(torch.isfinite(logits).all()):
                    # NaN logits score as "always class 0", a rank taken at face value.
                    blocks = " ".join(b.to_string() for b in arch.blocks)
                    raise UserError(f"stand-alone training of {blocks} (seed {seed}) diverged "
                                    f"(non-finite outputs); rerun with a lower --lr (now "
                                    f"{cfg.lr:g})")
                trained[seed] = {"seed": seed, **_scores(logits, vy, k)}
        runs = [trained[seed] for seed in cfg.seeds]
        rows.append({
            "genotype": g, "arch": [b.to_string() for b in arch.blocks],
            "macs": count(arch, k, size).macs, "supernet": shared,
            "standalone": [trained[s] for s in sorted(trained)],  # every seed trained
            "standalone_mean": {m: float(np.mean([r[m] for r in runs])) for m in RANK_METRICS},
            "standalone_std": {m: float(np.std([r[m] for r in runs])) for m in RANK_METRICS}})
        atomic_write_text(json_path, json.dumps(
            {"settings": settings, "supernet": cfg.supernet,
             "supernet_iterations": iterations, "rows": rows}, indent=1))
    taus = kendall_table(rows)
    result = {"settings": settings, "supernet": cfg.supernet,
              "supernet_iterations": iterations, "search_settings": scfg, "rows": rows,
              "kendall": taus}
    atomic_write_text(json_path, json.dumps(result, indent=1))
    plot_ranking(rows, taus, out / "ranking.png")
    return result
