"""``astromorph search``: ENAS (Pham et al. 2018) for the baseline network, reward paper Eq. 1.

One iteration = ``shared_steps`` minibatches training the supernet's shared weights (Adam,
lr 3.5e-4, paper Sec. 3.3), each on a freshly sampled path, then ``controller_steps``
REINFORCE updates of the LSTM controller: sample a genotype, score it with the shared weights
on a validation minibatch, reward = ACC x (FLOPs / T)^w, advantage against a moving-average
baseline, plus an entropy bonus. After the budget, ``final_samples`` genotypes are drawn and
the best by reward on the whole validation split is written as an architecture JSON that
``astromorph train --arch FILE`` and ``astromorph scale`` read. State is checkpointed after
every iteration; ``resume=True`` continues the same run exactly.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..fileio import atomic_write_text
from ..models.flops import count
from ..models.torch_io import checkpoint_errors
from ..training.train import _atomic_save
from .controller import Controller, reward
from .space import DEFAULT_SPACE, SearchSpace
from .supernet import SuperNet

__all__ = ["SearchConfig", "search", "search_arrays", "plot_rewards", "path_logits",
           "calibration_batch", "score_logits", "stratified_subset", "normalisation",
           "model_inputs", "load_splits"]

#: Settings that may change between a run and its resumption (they bound it, not shape it).
BUDGET_FIELDS = ("iterations", "budget_minutes")


@dataclass
class SearchConfig:
    """Settings of one search (see the module docstring for the loop)."""

    output: str
    labels: str | None = None
    image_dir: str | None = None
    id_column: str = "OBJID"
    class_names: list[str] | None = None
    iterations: int = 40
    budget_minutes: float | None = None
    shared_steps: int = 20
    controller_steps: int = 10
    batch_size: int = 64
    val_batch: int = 256
    lr_shared: float = 3.5e-4
    lr_controller: float = 3.5e-4
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.95
    target_flops: float = 20e6
    #: Cost in Eq. 1: "flops" (the paper's multiply-adds) or "latency" (ONNX Runtime time
    #: on this CPU, predicted from a measured per-op table, :mod:`.latency`).
    cost: str = "flops"
    #: T of Eq. 1 with ``cost="latency"``, ms per image (default: Table-2 G0's prediction).
    target_latency_ms: float | None = None
    w: float = -0.07
    w_below: float | None = None
    #: Shared-weight validation score in Eq. 1: one of :data:`METRICS`. macro-F1 is the
    #: one whose supernet ranking agreed with stand-alone training (``astromorph rank``,
    #: docs/search.md); likelihood did not.
    metric: str = "macro_f1"
    #: Iterations of shared-weight training on uniformly sampled paths before the
    #: controller learns (every path gets trained weights before being judged).
    warmup: int = 0
    final_samples: int = 16
    #: Training images whose statistics every candidate's batch norms get before it is
    #: judged (:meth:`SuperNet.recalibrate`); 0 judges with the shared running statistics.
    bn_calibration: int = 512
    seed: int = 0
    limit: int | None = None


def _paths(output: str | os.PathLike) -> dict[str, Path]:
    out = Path(output)
    stem = out.with_suffix("")
    return {"genotype": out, "log": Path(f"{stem}.log.jsonl"), "png": Path(f"{stem}.png"),
            "ckpt": Path(f"{stem}.ckpt.pt")}


#: Validation scores the reward can use. ``accuracy`` is the paper's; on imbalanced data it
#: sits at the majority rate for weak shared weights, so the others weigh classes equally.
#: ``likelihood`` = exp(-class-balanced cross-entropy): continuous, so it separates paths
#: whose argmax predictions are identical.
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "f1", "likelihood")


def score_logits(logits: torch.Tensor, y: torch.Tensor, metric: str, k: int) -> float:
    """The validation score ``metric`` (:data:`METRICS`) of ``logits`` for labels ``y``."""
    pred = logits.argmax(1)
    if metric == "accuracy":
        return float((pred == y).float().mean())
    counts = torch.bincount(y, minlength=k).float()
    present = counts > 0
    if metric == "balanced_accuracy":
        hits = torch.bincount(y[pred == y], minlength=k).float()
        return float((hits[present] / counts[present]).mean())
    if metric == "likelihood":
        ce = F.cross_entropy(logits, y, reduction="none")
        per_class = torch.zeros(k).index_add_(0, y, ce)[present] / counts[present]
        return float(torch.exp(-per_class.mean()))
    tp = torch.bincount(y[pred == y], minlength=k).float()
    predicted = torch.bincount(pred, minlength=k).float()
    f1 = 2 * tp / (predicted + counts).clamp(min=1)
    if metric == "macro_f1":
        return float(f1[present].mean())
    if metric == "f1":  # weighted by support
        return float((f1 * counts).sum() / counts.sum())
    raise UserError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices of ``y`` in class proportion (every class at least once), fixed by
    ``seed``: every candidate is judged on the same images."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        take = max(1, int(round(n * len(idx) / len(y))))
        out.append(rng.choice(idx, min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(out))


def path_logits(net: SuperNet, genotype: list[int], x: torch.Tensor,
                calibration: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of the path ``genotype`` on normalised images ``x`` in eval mode, its batch
    norms first recalibrated on ``calibration`` (when given)."""
    if calibration is not None:
        net.recalibrate(calibration, genotype)
    net.eval()
    with torch.no_grad():
        return torch.cat([net(x[i:i + 512], genotype) for i in range(0, len(x), 512)])


def calibration_batch(train_x: np.ndarray, n: int, size: int, region: float | None,
                      seed: int) -> torch.Tensor:
    """``n`` training images, augmented once with a fixed generator (uint8 NHWC -> float
    NCHW in [0, 1], not normalised): the same batch recalibrates every candidate."""
    from ..training.augment import augment_batch

    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train_x), generator=gen)[:n]
    x = torch.from_numpy(train_x)[idx].permute(0, 3, 1, 2).float() / 255
    return augment_batch(x, size, region, generator=gen) if region is not None else x


def normalisation(train_x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``(1, 3, 1, 1)`` of uint8 training images, in [0, 1] units
    (the search's and the ranking check's input normalisation)."""
    pix = train_x.reshape(-1, 3).astype(np.float64) / 255
    mean = torch.tensor(pix.mean(0), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pix.std(0).clip(1e-3), dtype=torch.float32).view(1, 3, 1, 1)
    return mean, std


def model_inputs(train_x: np.ndarray, val_x: np.ndarray, n_calibration: int, size: int,
                 region: float | None, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Normalisation ``(mean, std)``, the normalised val images (NCHW) and the normalised
    batch-norm calibration batch (``None`` when ``n_calibration`` is 0) of a search: the
    ranking check rebuilds exactly these from the search's settings."""
    mean, std = normalisation(train_x)
    vx = (torch.from_numpy(val_x).permute(0, 3, 1, 2).float() / 255 - mean) / std
    calib = ((calibration_batch(train_x, n_calibration, size, region, seed + 2) - mean) / std
             if n_calibration > 0 else None)
    return mean, std, vx, calib


def load_splits(table: Any, image_dir: str | os.PathLike, names: list[str], id_column: str,
                space: SearchSpace, limit: int | None = None) -> tuple:
    """The train split of a labels ``table`` as the trainer's rotation-safe cache and its val
    split at the inference transform, both at the search resolution (``LabelledSet`` each)."""
    from ..training.data import cache_size_for, load_split

    size = space.resolution
    tr = load_split(table, image_dir, "train", names, id_column, cache_size_for(size),
                    train=True, limit=limit)
    va = load_split(table, image_dir, "val", names, id_column, size, train=False, limit=limit)
    return tr, va


def _score(net: SuperNet, genotype: list[int], x: torch.Tensor, y: torch.Tensor,
           metric: str, classes: list[str], calibration: torch.Tensor | None = None) -> float:
    return score_logits(path_logits(net, genotype, x, calibration), y, metric, len(classes))


def search_arrays(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                  val_y: np.ndarray, class_names: list[str], cfg: SearchConfig,
                  space: SearchSpace = DEFAULT_SPACE, train_region: float | None = None,
                  resume: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Run the search on decoded images (uint8 ``(N, H, W, 3)``; val at ``space.resolution``).

    ``train_x`` covers ``train_region`` of the original image (the trainer's rotation-safe
    cache); ``None`` skips augmentation. Returns the summary also written to ``cfg.output``.
    """
    from tqdm.auto import tqdm

    from ..training.augment import augment_batch

    if cfg.metric not in METRICS:
        raise UserError(f"metric must be one of {', '.join(METRICS)}, not {cfg.metric!r}")
    paths = _paths(cfg.output)
    paths["genotype"].parent.mkdir(parents=True, exist_ok=True)
    signature = json.dumps({k: v for k, v in asdict(cfg).items() if k not in BUDGET_FIELDS},
                           sort_keys=True, default=str)
    torch.manual_seed(cfg.seed)
    net = SuperNet(space, len(class_names))
    ctrl = Controller(space.sizes)
    opt_w = torch.optim.Adam(net.parameters(), lr=cfg.lr_shared)
    opt_c = torch.optim.Adam(ctrl.parameters(), lr=cfg.lr_controller)
    data_gen = torch.Generator().manual_seed(cfg.seed)
    sample_gen = torch.Generator().manual_seed(cfg.seed + 1)
    state = {"iteration": 0, "baseline": None, "elapsed": 0.0, "log": []}
    if resume and paths["ckpt"].is_file():
        with checkpoint_errors(paths["ckpt"], "a search checkpoint",
                               "start again without --resume"):
            ck = torch.load(paths["ckpt"], weights_only=True)
            if ck["signature"] != signature:
                raise UserError(f"{paths['ckpt']} was made with other settings; start without "
                                "--resume or with the same options")
            net.load_state_dict(ck["net"])
            ctrl.load_state_dict(ck["ctrl"])
            opt_w.load_state_dict(ck["opt_w"])
            opt_c.load_state_dict(ck["opt_c"])
            data_gen.set_state(ck["data_gen"])
            sample_gen.set_state(ck["sample_gen"])
            torch.set_rng_state(ck["torch_rng"])
            state = json.loads(ck["state"])
    elif resume:
        raise UserError(f"--resume: no search checkpoint at {paths['ckpt']}")

    size = space.resolution
    mean, std, vx, calib = model_inputs(train_x, val_x, cfg.bn_calibration, size,
                                        train_region, cfg.seed)
    tx = torch.from_numpy(train_x)
    ty = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    vy = torch.from_numpy(np.asarray(val_y, dtype=np.int64))
    # The controller's candidates are all judged on one fixed, class-stratified subset.
    fixed = torch.from_numpy(stratified_subset(np.asarray(val_y), cfg.val_batch, cfg.seed))
    flops_cache: dict[tuple, int] = {}

    def macs(genotype: list[int]) -> int:
        key = tuple(genotype)
        if key not in flops_cache:
            flops_cache[key] = count(space.to_arch(genotype), len(class_names), size).macs
        return flops_cache[key]

    if cfg.cost not in ("flops", "latency"):
        raise UserError(f"cost must be flops or latency, not {cfg.cost!r}")
    table = target = None
    if cfg.cost == "latency":
        from .latency import LatencyTable

        table = LatencyTable(space, len(class_names))
        target = cfg.target_latency_ms or _g0_latency(table, space)

    def rate(genotype: list[int], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[float, float, int, float | None]:
        """Reward, score, MACs and (with the latency cost) predicted ms of ``genotype``."""
        score = _score(net, genotype, x, y, cfg.metric, class_names, calib)
        m = macs(genotype)
        if table is not None:
            ms = table.predict(genotype)
            return reward(score, ms, target, cfg.w, cfg.w_below), score, m, ms
        return reward(score, m, cfg.target_flops, cfg.w, cfg.w_below), score, m, None

    bar = tqdm(total=cfg.iterations, initial=state["iteration"], desc="search",
               disable=None if progress is None else not progress)
    started = time.perf_counter() - state["elapsed"]
    # Elapsed seconds at the end of each iteration: the rate of each phase, kept in the
    # genotype file (a checkpoint from before this was recorded lacks the early ones).
    seconds = state.setdefault("seconds", [])
    log_lines = progress is not False and bar.disable  # no bar (not a TTY): plain lines
    while state["iteration"] < cfg.iterations:
        if cfg.budget_minutes is not None and state["elapsed"] >= cfg.budget_minutes * 60:
            break
        # 1. Shared weights, one sampled path per minibatch (uniformly during warm-up).
        net.train()
        ctrl.eval()
        warming = state["iteration"] < cfg.warmup
        for _ in range(cfg.shared_steps):
            with torch.no_grad():
                genotype = (_uniform(space, sample_gen) if warming
                            else ctrl.sample(sample_gen)[0])
            idx = torch.randint(len(tx), (cfg.batch_size,), generator=data_gen)
            x = tx[idx].permute(0, 3, 1, 2).float() / 255
            if train_region is not None:
                x = augment_batch(x, size, train_region, generator=data_gen)
            loss = F.cross_entropy(net((x - mean) / std, genotype), ty[idx])
            opt_w.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt_w.step()
        if not bool(torch.isfinite(loss.detach())):  # NaN weights rate every path alike
            raise UserError(f"the shared weights diverged in search iteration "
                            f"{state['iteration'] + 1} (loss {float(loss.detach()):.3g}); "
                            f"the last good checkpoint is kept")
        # 2. Controller by REINFORCE on the fixed validation subset (after the warm-up).
        ctrl.train()
        for _ in range(0 if warming else cfg.controller_steps):
            genotype, logp, ent = ctrl.sample(sample_gen)
            r, score, m, ms = rate(genotype, vx[fixed], vy[fixed])
            b = state["baseline"]
            b = r if b is None else cfg.baseline_decay * b + (1 - cfg.baseline_decay) * r
            state["baseline"] = b
            loss = -(r - b) * logp - cfg.entropy_weight * ent
            opt_c.zero_grad(set_to_none=True)
            loss.backward()
            opt_c.step()
            state["log"].append({"iteration": state["iteration"], "genotype": genotype,
                                 "arch": [s.to_string() for s in space.to_arch(genotype).blocks],
                                 cfg.metric: score, "macs": m, "reward": r, "baseline": b,
                                 "entropy": float(ent.detach()),
                                 **({"latency_ms": ms} if table else {})})
        state["iteration"] += 1
        state["elapsed"] = time.perf_counter() - started
        seconds.append(round(state["elapsed"], 3))
        _atomic_save({"signature": signature, "net": net.state_dict(),
                      "ctrl": ctrl.state_dict(), "opt_w": opt_w.state_dict(),
                      "opt_c": opt_c.state_dict(), "data_gen": data_gen.get_state(),
                      "sample_gen": sample_gen.get_state(), "torch_rng": torch.get_rng_state(),
                      "state": json.dumps(state)}, paths["ckpt"])
        last = state["log"][-cfg.controller_steps:]
        bar.update(1)
        minutes = state["elapsed"] / 60
        bar.set_postfix(reward=f"{np.mean([e['reward'] for e in last]):.3f}" if last else "-",
                        entropy=f"{last[-1]['entropy']:.1f}" if last else "-",
                        it_per_min=f"{state['iteration'] / max(minutes, 1e-9):.1f}",
                        phase="warm-up" if warming else "search")
        if log_lines and (state["iteration"] % 10 == 0 or state["iteration"] == cfg.iterations):
            k = min(10, len(seconds) - 1)  # the recent rate: phases differ ~4x in speed
            recent = (60 * k / max(seconds[-1] - seconds[-1 - k], 1e-9) if k > 0
                      else 1 / max(minutes, 1e-9))
            line = (f"search iteration {state['iteration']}/{cfg.iterations} "
                    f"({'warm-up' if warming else 'search'}): {recent:.1f} it/min")
            if last:
                line += (f", reward {np.mean([e['reward'] for e in last]):.3f}, "
                         f"entropy {last[-1]['entropy']:.1f}")
            print(line, flush=True)
    bar.close()

    # 3. Derive: the best of several sampled genotypes on the whole validation split.
    ctrl.eval()
    candidates = []
    with torch.no_grad():
        for _ in range(cfg.final_samples):
            g, _, _ = ctrl.sample(sample_gen)
            if g not in candidates:
                candidates.append(g)
    rated = [(rate(g, vx, vy), g) for g in candidates]
    (best_r, best_score, best_m, best_ms), best = max(rated, key=lambda t: t[0][0])
    reference = {}
    try:  # the paper's G0 under the same shared weights, for the report
        from ..models.arch import G0

        g0 = space.encode(G0)
        r0, s0, m0, _ = rate(g0, vx, vy)
        reference = {"genotype": g0, cfg.metric: s0, "macs": m0, "reward": r0}
    except ValueError:
        pass
    arch = space.to_arch(best)
    arch = replace(arch, meta={**arch.meta, "search": {
        "reward": best_r, cfg.metric: best_score, "macs": best_m,
        "iterations": state["iteration"], "minutes": state["elapsed"] / 60,
        "it_per_min": phase_rates(seconds, cfg.warmup, state["iteration"]),
        "config": asdict(cfg), "paper_g0_shared_weights": reference,
        **({"target_latency_ms": target, "latency_ms": best_ms} if table else {}),
        "candidates": [{"genotype": g, "reward": r[0], cfg.metric: r[1], "macs": r[2]}
                       for r, g in rated]}})
    summary = {"arch": arch.to_dict()}
    atomic_write_text(paths["genotype"], json.dumps(summary, indent=1, default=str))
    atomic_write_text(paths["log"], "".join(json.dumps(e) + "\n" for e in state["log"]))
    if state["log"]:
        plot_rewards(state["log"], paths["png"], cfg.metric)
    return {"arch": arch, "reward": best_r, cfg.metric: best_score, "macs": best_m,
            "iterations": state["iteration"], "minutes": state["elapsed"] / 60,
            "log": state["log"], "reference": reference, "paths": paths}


def phase_rates(seconds: list[float], warmup: int, iterations: int) -> dict[str, float | None]:
    """Iterations per minute of the warm-up and of the controller phase.

    ``seconds[j]`` is the elapsed time at the end of iteration ``iterations - len(seconds)
    + j + 1`` (a run resumed from an older checkpoint lacks the first ones); a phase's rate
    is over its recorded part, ``None`` when less than one iteration of it was recorded.
    """
    first = iterations - len(seconds)
    ends = {first + j + 1: t for j, t in enumerate(seconds)}
    if first == 0:
        ends[0] = 0.0

    def rate(lo: int, hi: int) -> float | None:
        lo = max(lo, min(ends, default=hi))  # over the recorded part of the phase
        if hi <= lo or hi not in ends:
            return None
        return 60.0 * (hi - lo) / max(ends[hi] - ends[lo], 1e-9)

    w = min(warmup, iterations)
    return {"warmup": rate(0, w), "search": rate(w, iterations)}


def _g0_latency(table: Any, space: SearchSpace) -> float:
    """Predicted latency of the paper's G0 (the default latency target: as fast as G0)."""
    from ..models.arch import G0

    try:
        return table.predict(space.encode(G0))
    except ValueError:
        raise UserError("--cost latency needs --target-latency: Table-2 G0 is not in this "
                        "search space") from None


def _uniform(space: SearchSpace, gen: torch.Generator) -> list[int]:
    """A genotype with every choice drawn uniformly (warm-up paths)."""
    return [int(torch.randint(n, (1,), generator=gen)) for n in space.sizes]


def plot_rewards(log: list[dict], path: str | os.PathLike, metric: str = "accuracy") -> Path:
    """Reward, score and MACs of every sampled architecture over controller steps, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = np.array([e["reward"] for e in log])
    s = np.array([e[metric] for e in log])
    m = np.array([e["macs"] for e in log]) / 1e6
    steps = np.arange(len(r))
    k = max(1, len(r) // 20)
    smooth = np.convolve(r, np.ones(k) / k, mode="valid")
    lat = [e.get("latency_ms") for e in log]
    has_lat = all(v is not None for v in lat)
    fig, axes = plt.subplots(3 if has_lat else 2, 1, figsize=(7, 8 if has_lat else 6),
                             sharex=True)
    a1, a2 = axes[0], axes[1]
    a1.plot(steps, r, ".", ms=3, alpha=0.4, label="reward (Eq. 1)")
    a1.plot(steps[k - 1:], smooth, "-", label=f"reward, mean of {k}")
    a1.plot(steps, s, ".", ms=3, alpha=0.3, label=metric)
    a1.set_ylabel("reward / " + metric)
    a1.legend(fontsize=8)
    a2.plot(steps, m, ".", ms=3, alpha=0.5)
    a2.set_ylabel("MACs (M)")
    if has_lat:
        axes[2].plot(steps, lat, ".", ms=3, alpha=0.5, color="C2")
        axes[2].set_ylabel("predicted latency (ms)")
    axes[-1].set_xlabel("controller step")
    fig.suptitle("ENAS search: sampled architectures")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def search(cfg: SearchConfig, space: SearchSpace = DEFAULT_SPACE, resume: bool = False,
           progress: bool | None = None) -> dict[str, Any]:
    """Load ``cfg.labels``' train and val splits at the search resolution and search."""
    from ..training.data import TRAIN_REGION, load_labels, training_classes

    if not cfg.labels or not cfg.image_dir:
        raise UserError("search needs a labels table and an image directory")
    table = load_labels(cfg.labels, cfg.id_column)
    names = training_classes(table, cfg.class_names, cfg.labels)
    cfg = replace(cfg, class_names=list(names))
    tr, va = load_splits(table, cfg.image_dir, names, cfg.id_column, space, cfg.limit)
    return search_arrays(tr.images, tr.labels, va.images, va.labels, names, cfg, space,
                         train_region=TRAIN_REGION, resume=resume, progress=progress)
