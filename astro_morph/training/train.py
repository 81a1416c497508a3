"""The trainer: the paper's recipe (Adam, lr 1e-4, Sec. 3.2 augmentation) with checkpoints.

Every epoch writes ``checkpoint.pt`` (tensors and plain numbers only, loaded back with
``torch.load(weights_only=True)``) atomically; ``resume=True`` continues from it exactly
(same data order and augmentation draws, from the saved generator state). The best epoch by
validation accuracy is kept and written as a model file with a fitted softmax temperature.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..centring.crop import crop_or_paper
from ..errors import UserError, whole_number
from ..models.arch import get_arch
from ..models.efficientnet_g import batch_norm_momentum, build_model
from ..models.model_file import (
    MAX_INPUT_SIZE,
    MIN_INPUT_SIZE,
    read_bundle,
    train_log_path,
    write_bundle,
)
from ..models.torch_io import bundle_from_network, checkpoint_errors, network_from_bundle
from ..sources.base import format_id
from .augment import CROP_RANGE, augment_batch
from .data import (
    LabelledSet,
    cache_size_for,
    load_labels,
    load_split,
    shared_ids,
    split_rows,
    training_classes,
    zoom,
)
from .metrics import classification_report

__all__ = ["TrainConfig", "train", "fit_temperature", "environment"]


@dataclass
class TrainConfig:
    """Everything a training run depends on (recorded in the model file's provenance)."""

    labels: str
    image_dir: str
    output: str
    id_column: str = "OBJID"
    arch: str = "efficientnet-g0"
    resolution: int | None = None
    class_names: list[str] | None = None
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-4
    #: Decoupled (AdamW) weight decay on convolution and linear weights; batch-norm scales
    #: and biases are not decayed. 0 is plain Adam, bit for bit.
    weight_decay: float = 0.0
    class_weighting: str = "sqrt"  # none | sqrt | balanced
    schedule: str = "constant"  # constant (paper) | cosine
    seed: int = 0
    device: str = "cpu"
    init: str | None = None
    freeze_backbone: bool = False
    limit: int | None = None
    checkpoint_dir: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    name: str | None = None
    label_smoothing: float = 0.0
    #: torch intra-op threads (default: all cores). Results are bit-for-bit repeatable for
    #: the same data, seed, thread count and CPU kind; the count is recorded.
    threads: int | None = None
    #: fp32, or bf16 autocast (fast on CPUs with AVX512-BF16/AMX, and on CUDA).
    precision: str = "fp32"
    #: NHWC activations: oneDNN's fast layout for convolutions on CPU.
    channels_last: bool = True
    #: Model files whose mean TTA probabilities on each training image are soft targets
    #: (knowledge distillation, Hinton et al. 2015); empty: plain labels only.
    teacher: list[str] | None = None
    #: Weight of the soft-target term; the labelled term gets ``1 - distill_weight``.
    distill_weight: float = 0.5
    #: A folder of unlabelled images: the teacher labels each, and those it gives a class
    #: probability >= ``pseudo_threshold`` join the training split with that class.
    pseudo_labels: str | None = None
    pseudo_threshold: float = 0.9
    #: Another labels table (id, label, split) whose train-split rows of the training classes
    #: join the training split, images in ``extra_image_dir``, ids in ``extra_id_column``
    #: (None: its first column). Rows of other classes are left out, not relabelled.
    extra_labels: str | None = None
    extra_image_dir: str | None = None
    extra_id_column: str | None = None
    #: Decay of an exponential moving average of the weights, updated after every step
    #: (0: off). The average is what is validated, selected and shipped: it smooths the
    #: 1-2 point epoch-to-epoch jumps of val accuracy on noisy labels.
    ema: float = 0.0
    #: The paper's colour jitter (brightness, contrast, saturation, hue) on top of the
    #: geometric augmentation. Off keeps each galaxy's colour, which is physical (ellipticals
    #: are red, star-forming spirals blue), so the network may use it.
    colour_jitter: bool = True
    #: mixup (Zhang et al. 2018): each batch is blended with a shuffled copy of itself, with
    #: a weight drawn from Beta(mixup, mixup), and so are its targets (0: off). Known to
    #: soften what a network memorises of wrong labels.
    mixup: float = 0.0
    #: Centre-crop side as a fraction of the image side, at validation and in the shipped
    #: model (recorded in the model file, which classify then applies); the random training
    #: crops scale with it. None: the paper's 200/424.
    crop_fraction: float | None = None
    #: Sharpness-aware minimisation (Foret et al. 2021): each step first moves the weights
    #: by ``sam`` (rho) along the normalised gradient, then takes the gradient there, so the
    #: optimiser prefers flat minima; reported robust to label noise. Twice the compute per
    #: step (0: off).
    sam: float = 0.0
    #: Sense of winding as an auxiliary task: a column of the labels table whose two values
    #: ``spin_values`` are mirror images of each other (Galaxy Zoo 1's ``gz1_class``:
    #: ``spiral_cw``, ``spiral_acw``). A second head on the pooled features learns which,
    #: the target swapping whenever the augmentation mirrors the image, so the network must
    #: see the arms themselves; the head is dropped from the shipped model (None: off).
    spin_column: str | None = None
    spin_values: list[str] = field(default_factory=lambda: ["spiral_cw", "spiral_acw"])
    #: Weight of the winding loss beside the class loss.
    spin_weight: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)


def environment() -> dict[str, Any]:
    """What a training run's numbers depend on besides its config (recorded in the file)."""
    import platform

    from .. import __version__

    return {"astro_morph": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def _joined(train_set: LabelledSet, extra: LabelledSet) -> LabelledSet:
    """The training split with ``extra``'s images appended (pseudo- or other labels)."""
    return replace(train_set, images=np.concatenate([train_set.images, extra.images]),
                   labels=np.concatenate([train_set.labels, extra.labels]),
                   ids=train_set.ids + extra.ids)


def _decay_groups(params: list, weight_decay: float) -> list:
    """Parameter groups for AdamW: norm scales and biases (1-D) are not decayed, the usual
    practice, since decaying them only moves the activations' scale. One group when off."""
    if not weight_decay:
        return params
    groups = [{"params": [p for p in params if p.ndim > 1]},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _class_weights(labels: np.ndarray, k: int, mode: str) -> torch.Tensor:
    counts = np.bincount(labels, minlength=k).astype(float)
    counts[counts == 0] = 1
    if mode == "none":
        w = np.ones(k)
    elif mode == "sqrt":
        w = 1 / np.sqrt(counts)
    elif mode == "balanced":
        w = 1 / counts
    else:
        raise UserError(f"class weighting must be none, sqrt or balanced, not {mode!r}")
    return torch.tensor(w / (w * counts).sum() * counts.sum(), dtype=torch.float32)


def teacher_targets(teacher: list[str], ids: list[str], image_dir: str, id_column: str,
                    class_names: list[str], threads: int | None = None,
                    allow_missing: bool = False) -> np.ndarray:
    """Soft targets ``(N, K)``: the teacher ensemble's probabilities for each image, averaged
    over the 8 rotations/flips, through the classify pipeline (the teacher sees exactly what
    it saw when it was scored). Morphology does not change under the training augmentation
    (rotations, flips, crops), so one target per image holds for every augmented view.
    An image the teacher cannot classify is an error, or with ``allow_missing`` a NaN row."""
    from astropy.table import Table

    from ..api import classify
    from ..columns import read_probabilities
    from ..inference.ensemble import EnsembleClassifier
    from ..inference.load import load_model
    from ..inference.tta import TTAClassifier

    clf = TTAClassifier(EnsembleClassifier([load_model(m, threads=threads) for m in teacher]))
    if sorted(clf.class_names) != sorted(class_names):  # the order may differ: read by name
        raise UserError(f"teacher classes {list(clf.class_names)} differ from the training "
                        f"classes {list(class_names)}")
    out = classify(Table({id_column: ids}), source="galaxyzoo", model=clf,
                   image_dir=image_dir, id_column=id_column, progress=False)
    probs = read_probabilities(out, list(class_names))
    bad = ~np.isfinite(probs).all(1)
    if bad.any() and not allow_missing:
        raise UserError(f"teacher could not classify {int(bad.sum())} training images "
                        f"(first: {ids[int(np.flatnonzero(bad)[0])]})")
    return probs.astype(np.float32)


def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean) / std


@torch.no_grad()
def _logits(net, images: np.ndarray, mean, std, device, batch: int = 512,
            head: torch.nn.Module | None = None) -> torch.Tensor:
    """The network's outputs for ``images`` in slices of ``batch``; with ``head``, that
    head's on the pooled features instead of the classifier's."""
    net.eval()
    out = []
    for i in range(0, len(images), batch):
        x = _normalise(torch.from_numpy(images[i:i + batch]).to(device).permute(0, 3, 1, 2)
                       .float() / 255, mean, std)
        out.append((net(x) if head is None else head(net.features(x))).float().cpu())
    return torch.cat(out)


def _objective(logits: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None,
               weights: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Class-weighted cross-entropy on the labels, blended with the teacher's soft targets
    when there are any."""
    loss = F.cross_entropy(logits, y, weight=weights, label_smoothing=cfg.label_smoothing)
    if soft is not None:
        # Soft targets carry the teacher's class balance, so no class weights here.
        loss = ((1 - cfg.distill_weight) * loss
                + cfg.distill_weight * F.cross_entropy(logits, soft))
    return loss


def _batch_loss(net, batch: tuple, weights: torch.Tensor, cfg: TrainConfig,
                autocast, spin_head: torch.nn.Module | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and loss of one normalised training batch ``(x, y, soft targets or None, mixup
    weight, mixup partners or None, winding targets or None)``; mixup blends the targets as
    the images were."""
    x, y, targets, lam, partner, spin = batch
    with autocast:
        if spin_head is None:
            logits = net(x).float()
        else:
            feats = net.features(x)
            logits = net.classifier(feats).float()
            spin_logit = spin_head(feats).float().squeeze(1)
    loss = _objective(logits, y, targets, weights, cfg)
    if partner is not None:
        loss = lam * loss + (1 - lam) * _objective(
            logits, y[partner], None if targets is None else targets[partner], weights, cfg)
    if spin_head is not None:
        loss = loss + cfg.spin_weight * _spin_loss(spin_logit, spin)
    return logits, loss


def _spin_loss(spin_logit: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss over the rows with a sense of winding (``spin`` +1 or -1; 0 rows
    count for nothing), without a branch that would make a GPU wait."""
    known = (spin != 0).float()
    per_row = F.binary_cross_entropy_with_logits(spin_logit, (spin > 0).float(),
                                                 reduction="none")
    return (per_row * known).sum() / known.sum().clamp(min=1)


def spin_targets(table, column: str, values: list[str], ids: list[str], id_column: str,
                 labels: str, required: bool = True) -> np.ndarray:
    """+1, -1 or 0 for each of ``ids``: the row's ``column`` is ``values[0]``, ``values[1]``
    or anything else (images not in ``table``, such as pseudo-labelled ones, get 0)."""
    if column not in table.colnames:
        raise UserError(f"{labels}: no column {column!r} for --spin-column (columns: "
                        f"{', '.join(table.colnames)})")
    if len(values) != 2 or values[0] == values[1]:
        raise UserError(f"--spin-values needs two different values, not {values!r}")
    col = np.ma.filled(table[column], "").astype(str)
    sign = {values[0]: 1.0, values[1]: -1.0}
    # keyed as load_split names its rows (an id 1.0 in a float column is the image 1)
    by_id = {format_id(i): sign.get(v, 0.0) for i, v in zip(table[id_column], col, strict=True)}
    out = np.array([by_id.get(str(i), 0.0) for i in ids], dtype=np.float32)
    if required and not (out != 0).any():
        raise UserError(f"{labels}: no training row has {column} = {values[0]!r} or "
                        f"{values[1]!r}, so --spin-column has nothing to learn")
    return out


@torch.no_grad()
def _spin_accuracy(net, head, images: np.ndarray, spin: np.ndarray, mean, std,
                   device, batch: int = 512) -> float | None:
    """Share of the rows with a sense of winding whose head output has the right sign."""
    rows = np.flatnonzero(spin != 0)
    if not len(rows):
        return None
    out = _logits(net, images[rows], mean, std, device, batch, head=head).squeeze(1)
    return int(((out > 0) == torch.from_numpy(spin[rows] > 0)).sum()) / len(rows)


def mixup_draw(alpha: float, n: int, generator: torch.Generator) -> tuple[float, torch.Tensor]:
    """One batch's mixup weight ~ Beta(alpha, alpha) and partner order, both from
    ``generator`` (so a resumed run draws the same): the weight by the inverse CDF of a
    uniform draw, as torch's Beta sampler takes no generator."""
    from scipy.special import betaincinv

    u = float(torch.rand(1, generator=generator))
    return float(betaincinv(alpha, alpha, u)), torch.randperm(n, generator=generator)


def ema_with_warmup(decay: float):
    """An ``AveragedModel`` update whose decay ramps up as ``(1 + n) / (10 + n)`` (timm's EMA
    warmup) to ``decay``. Without the ramp the first steps' weights and batch-norm statistics
    (variances far above the trained ones) linger for ~1/(1 - decay) steps: at 0.998 a G3's
    average still mapped every image to one output after 10 of 30 epochs."""
    from torch.optim.swa_utils import get_ema_multi_avg_fn

    # Steps so far, counted here because int(n_averaged) every step would sync a GPU. One
    # count per tensor group: AveragedModel calls this once per (device, dtype) group.
    counts: dict[int, int] = {}

    def update(averaged: list, current: list, n_averaged: torch.Tensor) -> None:
        key = averaged[0].data_ptr()  # the group's first tensor; views change, storage not
        if key not in counts:
            counts[key] = int(n_averaged)  # once per group; a resumed run starts past 0
        n = counts[key]
        counts[key] = n + 1
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))(averaged, current, n_averaged)
    return update


def sam_ascent(params: list, rho: float) -> list:
    """SAM's first half: move each parameter by ``rho * grad / ||grad||`` (the gradient of
    the loss just backpropagated) and return the moves, so :func:`sam_descend` can undo them
    once the gradient at the moved weights is taken."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = rho / (norm + 1e-12)
    moves = []
    with torch.no_grad():
        for p in params:
            move = None if p.grad is None else p.grad * scale
            if move is not None:
                p.add_(move)
            moves.append(move)
    return moves


def sam_descend(params: list, moves: list) -> None:
    """Put the parameters back where :func:`sam_ascent` found them, keeping the gradients
    taken at the moved weights (what the optimiser then steps with)."""
    with torch.no_grad():
        for p, move in zip(params, moves, strict=True):
            if move is not None:
                p.sub_(move)


def _same_settings(saved: dict[str, Any], current: dict[str, Any]) -> bool:
    """A checkpoint's config against this run's. A field the checkpoint predates (added to
    TrainConfig since) counts as its default, so a run started before an option existed can be
    resumed without it; any other difference refuses the resume."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    old = {k: defaults[k] for k in current.keys() - saved.keys() if k in defaults}
    return json.dumps({**old, **saved}, sort_keys=True) == json.dumps(current, sort_keys=True)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature T minimising the NLL of softmax(logits / T) (Guo et al. 2017)."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def _atomic_save(obj: dict, path: Path) -> None:
    from ..fileio import atomic_write

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def train(cfg: TrainConfig, resume: bool = False, progress: bool | None = None,
          overwrite: bool = False) -> dict:
    """Train, keep the best epoch by validation accuracy, write the model file.

    An existing ``cfg.output`` is replaced only with ``overwrite`` (or ``resume``, which
    continues the run that writes it). The checkpoint folder
    (default ``<output>.ckpt``) is removed once the model file is written, unless
    ``cfg.checkpoint_dir`` names one. Returns a summary dict (validation report of the best
    epoch, timings, history).
    """
    from tqdm.auto import tqdm

    from ..inference.deploy import export_onnx
    from ..inference.torch_backend import resolve_device

    if Path(cfg.output).exists() and not (overwrite or resume):
        raise UserError(f"{cfg.output} exists; pass --overwrite to replace it")
    if cfg.freeze_backbone and not cfg.init:  # a random backbone would stay random
        raise UserError("--freeze-backbone needs --init: the model whose backbone is kept")
    # The CLI's click ranges, for API callers: epochs=0 had ended in load_state_dict(None),
    # batch_size=0 in range()'s ValueError, lr <= 0 in torch's own error or a run that learns
    # nothing.
    for key, low in (("epochs", 1), ("batch_size", 1), ("threads", 1), ("limit", 1),
                     ("resolution", MIN_INPUT_SIZE)):
        # int(): numpy integers too, since the config is written as JSON
        cfg = replace(cfg, **{key: whole_number(key, getattr(cfg, key), low)})
    if not 0 < cfg.lr < math.inf:
        raise UserError(f"learning rate must be a finite number > 0, not {cfg.lr}")
    if cfg.resolution is not None and cfg.resolution > MAX_INPUT_SIZE:
        raise UserError(f"resolution must be {MIN_INPUT_SIZE}-{MAX_INPUT_SIZE} pixels, not "
                        f"{cfg.resolution}")
    if cfg.precision not in ("fp32", "bf16"):
        raise UserError(f"precision must be fp32 or bf16, not {cfg.precision!r}")
    if not 0 <= cfg.weight_decay < math.inf:
        raise UserError(f"weight decay must be a finite number >= 0, not {cfg.weight_decay}")
    if not 0 <= cfg.label_smoothing < 1:
        raise UserError(f"label smoothing must be in [0, 1), not {cfg.label_smoothing}")
    if not 0 <= cfg.distill_weight <= 1:
        raise UserError(f"distill weight must be in [0, 1], not {cfg.distill_weight}")
    if cfg.mixup < 0:
        raise UserError(f"mixup must be >= 0 (0: off), not {cfg.mixup}")
    if not 0 <= cfg.ema < 1:
        raise UserError(f"EMA decay must be in [0, 1), not {cfg.ema}")
    if not 0 <= cfg.sam < math.inf:
        raise UserError(f"SAM radius must be a finite number >= 0 (0: off), not {cfg.sam}")
    if cfg.spin_column and cfg.mixup:
        raise UserError("--spin-column and --mixup do not go together: a blended image has "
                        "no one sense of winding")
    if cfg.pseudo_labels and not cfg.teacher:
        raise UserError("--pseudo-labels needs --teacher: the model that labels the images")
    if bool(cfg.extra_labels) != bool(cfg.extra_image_dir):
        raise UserError("--extra-labels and --extra-image-dir go together: the table and the "
                        "folder of its images")
    device = resolve_device(cfg.device)
    threads = int(cfg.threads or torch.get_num_threads())
    torch.set_num_threads(threads)
    cfg = replace(cfg, threads=threads)
    torch.manual_seed(cfg.seed)
    table = load_labels(cfg.labels, cfg.id_column)
    init_bundle = read_bundle(cfg.init) if cfg.init else None
    if init_bundle is not None:  # fine-tuning keeps the network; provenance says which
        arch = network_from_bundle(init_bundle).arch
        cfg = replace(cfg, arch=arch.name)
        if cfg.crop_fraction is None:  # and its framing, unless told otherwise
            cfg = replace(cfg, crop_fraction=init_bundle.crop_fraction)
    else:
        arch = get_arch(cfg.arch)
    if cfg.resolution:
        arch = replace(arch, resolution=int(cfg.resolution))
    size = arch.resolution
    crop = crop_or_paper(cfg.crop_fraction)
    crop_range = tuple(c * zoom(crop) for c in CROP_RANGE)  # checks the fraction first
    class_names = training_classes(table, cfg.class_names, cfg.labels, cfg.train_split)
    val_rows = split_rows(table, cfg.val_split, cfg.labels)  # before the images decode
    # Every split that is scored (val, test, or a survey's own names), not only "test".
    held = {str(s) for s in np.ma.filled(table["split"], "")} - {cfg.train_split, ""}
    for other in [cfg.val_split, *sorted(held - {cfg.val_split})]:
        leaked = shared_ids(table, cfg.id_column, cfg.train_split, other)
        if leaked:
            logging.getLogger("astro_morph").warning(
                "%s: %d ids are in both %r and %r (first: %s); %r figures will be optimistic",
                cfg.labels, len(leaked), cfg.train_split, other, leaked[0], other)
    cfg = replace(cfg, class_names=list(class_names), resolution=size)

    t0 = time.perf_counter()
    train_set = load_split(table, cfg.image_dir, cfg.train_split, class_names, cfg.id_column,
                           cache_size_for(size), train=True, limit=cfg.limit,
                           crop_fraction=crop)
    val_set = load_split(table, cfg.image_dir, cfg.val_split, class_names, cfg.id_column,
                         size, train=False, limit=cfg.limit, crop_fraction=crop)
    val_labels = np.ma.filled(val_rows["label"], "").astype(str)
    unseen = sorted(set(val_labels.tolist()) - {""} - set(class_names))
    if unseen:  # the selection metric leaves them out: say so, as evaluate does
        logging.getLogger("astro_morph").warning(
            "%s: %d %r rows are labelled with classes the training does not have (%s); "
            "they are left out of the val scores", cfg.labels,
            int(np.isin(val_labels, unseen).sum()), cfg.val_split, ", ".join(unseen))
    soft, pseudo, extra_stats = None, None, None
    if cfg.pseudo_labels or cfg.extra_labels:  # added images must not show a val/test galaxy
        from .pseudo import evaluation_images

        exclude = evaluation_images(table, cfg.image_dir, cfg.id_column, cfg.train_split)
    if cfg.teacher and cfg.distill_weight > 0:  # weight 0: teacher only for pseudo-labels
        soft = torch.from_numpy(teacher_targets(cfg.teacher, train_set.ids, cfg.image_dir,
                                                cfg.id_column, list(class_names), threads))
    if cfg.pseudo_labels:
        from .pseudo import pseudo_labelled

        extra, extra_soft, pseudo = pseudo_labelled(
            cfg.teacher, cfg.pseudo_labels, list(class_names), cfg.pseudo_threshold,
            cache_size_for(size), threads, limit=cfg.limit, exclude=exclude,
            crop_fraction=crop)
        train_set = _joined(train_set, extra)
        if soft is not None:
            soft = torch.cat([soft, torch.from_numpy(extra_soft)])
    if cfg.extra_labels:
        from .extra import extra_labelled

        extra, extra_stats = extra_labelled(
            cfg.extra_labels, cfg.extra_image_dir, list(class_names), cache_size_for(size),
            cfg.extra_id_column, limit=cfg.limit, exclude=exclude, crop_fraction=crop)
        train_set = _joined(train_set, extra)
        if soft is not None:
            soft = torch.cat([soft, torch.from_numpy(teacher_targets(
                cfg.teacher, extra.ids, str(cfg.extra_image_dir), "id", list(class_names),
                threads))])
    decode_s = time.perf_counter() - t0
    pix = train_set.images.reshape(-1, 3).astype(np.float64) / 255
    mean_l, std_l = pix.mean(0).tolist(), pix.std(0).clip(1e-3).tolist()
    mean = torch.tensor(mean_l, device=device).view(1, 3, 1, 1)
    std = torch.tensor(std_l, device=device).view(1, 3, 1, 1)

    if init_bundle is not None:
        net = network_from_bundle(init_bundle).train()
        if init_bundle.class_names != list(class_names):
            net.reset_classifier(len(class_names))
    else:
        net = build_model(arch, len(class_names))
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    net = net.to(device, memory_format=layout)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=cfg.precision == "bf16")
    if cfg.freeze_backbone:
        for name, p in net.named_parameters():
            p.requires_grad = name.startswith("classifier")
    params = [p for p in net.parameters() if p.requires_grad]
    spin_head, spin_t, val_spin = None, None, None
    if cfg.spin_column:
        spin_t = torch.from_numpy(spin_targets(table, cfg.spin_column, cfg.spin_values,
                                               train_set.ids, cfg.id_column, cfg.labels)).to(device)
        val_spin = spin_targets(table, cfg.spin_column, cfg.spin_values, val_set.ids,
                                cfg.id_column, cfg.labels, required=False)
        spin_head = torch.nn.Linear(net.num_features, 1).to(device)
        params = params + list(spin_head.parameters())
    ema = None
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel

        ema = AveragedModel(net, multi_avg_fn=ema_with_warmup(cfg.ema), use_buffers=True)
    scored = net if ema is None else ema.module  # the weights validated and shipped
    opt = torch.optim.Adam(_decay_groups(params, cfg.weight_decay), lr=cfg.lr,
                           weight_decay=cfg.weight_decay, decoupled_weight_decay=True)
    weights = _class_weights(train_set.labels, len(class_names), cfg.class_weighting).to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.schedule not in ("constant", "cosine"):
        raise UserError(f"schedule must be constant or cosine, not {cfg.schedule!r}")
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
             if cfg.schedule == "cosine" else None)

    ckdir = Path(cfg.checkpoint_dir or (str(cfg.output) + ".ckpt"))
    ckdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = ckdir / "checkpoint.pt"
    start_epoch, history, best = 0, [], {"accuracy": -1.0, "epoch": -1, "state": None}
    earlier_s = 0.0
    if resume and ckpt_path.is_file():
        # A UserError (other settings) passes through; only damage is reworded.
        with checkpoint_errors(ckpt_path, "a training checkpoint",
                               "start again without --resume"):
            ck = torch.load(ckpt_path, weights_only=True, map_location=device)
            if not _same_settings(json.loads(ck["config"]), asdict(cfg)):
                raise UserError(f"{ckpt_path} was made with other settings; start without "
                                "--resume or with the same options")
            net.load_state_dict(ck["model"])
            if ema is not None:
                ema.load_state_dict(ck["ema"])
            if spin_head is not None:
                spin_head.load_state_dict(ck["spin_head"])
            opt.load_state_dict(ck["optimizer"])
            # RNG states are CPU byte tensors, whatever map_location moved them to
            gen.set_state(ck["generator"].cpu())
            torch.set_rng_state(ck["torch_rng"].cpu())  # dropout and stochastic depth use it
            if sched is not None:
                sched.load_state_dict(json.loads(ck["scheduler"]))
            start_epoch, history = int(ck["epoch"]) + 1, json.loads(ck["history"])
            # training time of the earlier segments (0 for a checkpoint from before it was kept)
            earlier_s = float(ck.get("train_seconds", 0.0))
            best = {"accuracy": float(ck["best_accuracy"]), "epoch": int(ck["best_epoch"]),
                    "state": ck["best_state"]}
    elif resume:
        raise UserError(f"--resume: no checkpoint at {ckpt_path}")

    colour = {} if cfg.colour_jitter else {"jitter": 0.0, "hue": 0.0}
    n = len(train_set.labels)
    # On the training device once (a no-op on a CPU): a GPU then indexes its batches itself
    # instead of copying them from host memory every step.
    train_images = torch.from_numpy(train_set.images).to(device)
    train_labels_t = torch.from_numpy(train_set.labels).to(device)
    if soft is not None:
        soft = soft.to(device)
    val_y = torch.from_numpy(val_set.labels)
    t_train = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        order = torch.randperm(n, generator=gen)
        bar = tqdm(range(0, n, cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   leave=False, disable=None if progress is None else not progress)
        seen = 0
        # Running sums stay on the device (float64, as Python floats were), so a GPU is not
        # made to wait for every step's loss; the bar reads them now and then.
        loss_sum_t = torch.zeros((), dtype=torch.float64, device=device)
        correct_t = torch.zeros((), dtype=torch.int64, device=device)
        for step, i in enumerate(bar):
            idx = order[i:i + cfg.batch_size].to(device)
            x = train_images[idx].permute(0, 3, 1, 2).float() / 255
            x, flip = augment_batch(x, size, train_set.region, crop_range, generator=gen,
                                    return_flip=True, **colour)
            spin = spin_t[idx] * flip if spin_t is not None else None  # mirrored: other way
            y = train_labels_t[idx]
            lam, partner = 1.0, None
            if cfg.mixup:
                lam, partner = mixup_draw(cfg.mixup, len(idx), gen)
                partner = partner.to(device)
                x = lam * x + (1 - lam) * x[partner]
            x = _normalise(x, mean, std).contiguous(memory_format=layout)
            batch = (x, y, soft[idx] if soft is not None else None, lam, partner, spin)
            logits, loss = _batch_loss(net, batch, weights, cfg, autocast, spin_head)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.sam:  # the step uses the gradient at the worst nearby weights
                moves = sam_ascent(params, cfg.sam)
                opt.zero_grad(set_to_none=True)
                # the same batch again: batch norm must not count it twice
                with batch_norm_momentum(net, 0.0):
                    _batch_loss(net, batch, weights, cfg, autocast, spin_head)[1].backward()
                sam_descend(params, moves)
            opt.step()
            if ema is not None:
                ema.update_parameters(net)
            seen += len(idx)
            correct_t += (logits.argmax(1) == y).sum()
            loss_sum_t += loss.detach().double() * len(idx)
            if not bar.disable and step % 10 == 0:
                bar.set_postfix(loss=f"{float(loss_sum_t) / seen:.3f}",
                                acc=f"{int(correct_t) / seen:.3f}")
        loss_sum, correct = float(loss_sum_t), int(correct_t)
        if sched is not None:
            sched.step()
        val_logits = _logits(scored, val_set.images, mean, std, device)
        if not (math.isfinite(loss_sum) and bool(torch.isfinite(val_logits).all())):
            # NaN logits argmax to class 0, which could pass for an accuracy and be kept;
            # the checkpoint of the last good epoch is left as it was.
            if not ckpt_path.exists():
                with contextlib.suppress(OSError):
                    ckdir.rmdir()  # made for this run, still empty
            raise UserError(f"training diverged in epoch {epoch + 1} (loss "
                            f"{loss_sum / max(seen, 1):.3g}, non-finite outputs): start "
                            f"again with a lower --lr (now {cfg.lr:g})")
        val_acc = float((val_logits.argmax(1) == val_y).float().mean())
        val_probs = torch.softmax(val_logits, 1).numpy()
        val_epoch = classification_report(val_set.labels, val_probs, class_names)
        history.append({"epoch": epoch, "loss": loss_sum / max(seen, 1),
                        "val_loss": float(F.cross_entropy(val_logits, val_y)),
                        "val_macro_f1": val_epoch["f1_macro"],
                        "train_accuracy": correct / max(seen, 1), "val_accuracy": val_acc})
        if spin_head is not None:  # can the network tell the winding at all?
            history[-1]["val_spin_accuracy"] = _spin_accuracy(
                net, spin_head, val_set.images, val_spin, mean, std, device)
        if val_acc > best["accuracy"]:
            best = {"accuracy": val_acc, "epoch": epoch,
                    "state": {k: v.detach().clone() for k, v in scored.state_dict().items()}}
        _atomic_save({
            "config": json.dumps(asdict(cfg), sort_keys=True),
            "epoch": epoch, "model": net.state_dict(), "optimizer": opt.state_dict(),
            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": json.dumps(history),
            "best_accuracy": best["accuracy"], "best_epoch": best["epoch"],
            "best_state": best["state"],
            "train_seconds": earlier_s + time.perf_counter() - t_train,
            "scheduler": json.dumps(sched.state_dict() if sched is not None else {}),
            **({"ema": ema.state_dict()} if ema is not None else {}),
            **({"spin_head": spin_head.state_dict()} if spin_head is not None else {}),
        }, ckpt_path)
        if progress is not False:
            print(f"epoch {epoch + 1}/{cfg.epochs}: loss {history[-1]['loss']:.4f} "
                  f"train acc {history[-1]['train_accuracy']:.4f} val acc {val_acc:.4f}",
                  flush=True)
    segment_s = time.perf_counter() - t_train
    train_s = earlier_s + segment_s  # a resumed run counts its earlier segments too

    net.load_state_dict(best["state"])
    val_logits = _logits(net, val_set.images, mean, std, device)
    temperature = fit_temperature(val_logits, val_y)
    probs = torch.softmax(val_logits / temperature, 1).numpy()
    report = classification_report(val_set.labels, probs, class_names)
    # No timings in the file: the same data, seed and threads must give the same bytes.
    counts = np.bincount(train_set.labels, minlength=len(class_names))
    provenance = {"config": asdict(cfg), "train_images": len(train_set.labels),
                  # what the class weights were computed from (a --limit or a skipped image
                  # changes it), per class in the file's class order
                  "train_class_counts": dict(zip(class_names, map(int, counts), strict=True)),
                  "best_epoch": best["epoch"], "history": history,
                  "val_report": {k: v for k, v in report.items() if k != "per_class"},
                  "environment": environment(),
                  **({"skipped_images": {cfg.train_split: train_set.skipped,
                                         cfg.val_split: val_set.skipped}}
                     if train_set.skipped or val_set.skipped else {}),
                  **({"pseudo_labels": pseudo} if pseudo is not None else {}),
                  **({"extra_labels": extra_stats} if extra_stats is not None else {})}
    bundle = bundle_from_network(net.cpu(), cfg.name or Path(cfg.output).stem, class_names,
                                 size, mean_l, std_l, temperature, provenance,
                                 crop_fraction=cfg.crop_fraction)
    bundle.onnx = export_onnx(bundle)
    sha = write_bundle(bundle, cfg.output, overwrite=True)
    # Timings vary run to run, so they go beside the model file, not into it.
    from ..fileio import atomic_write_text

    atomic_write_text(train_log_path(cfg.output), json.dumps(
        {"sha256": sha, "train_seconds": train_s, "decode_seconds": decode_s,
         "epochs": cfg.epochs, "images_per_second": len(train_set.labels) *
         (cfg.epochs - start_epoch) / max(segment_s, 1e-9),
         **({"resumed_at_epoch": start_epoch} if start_epoch else {}),
         "history": history}, indent=1))
    if cfg.checkpoint_dir is None:  # the model file now holds the result
        shutil.rmtree(ckdir, ignore_errors=True)
    return {"output": cfg.output, "sha256": sha, "best_epoch": best["epoch"],
            "temperature": temperature, "val": report, "train_seconds": train_s,
            "history": history, "pseudo_labels": pseudo, "extra_labels": extra_stats}
