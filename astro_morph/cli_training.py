"""The training commands of ``astromorph``: train, evaluate, compare, search, scale,
kaggle-select (registered on :data:`astro_morph.cli.cli`; torch is imported only inside)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli import Finite, _int_list, check_output_dirs, class_list, cli, figure_path, row_warnings
from .errors import UserError

#: The id column of labelled sets: their documented layout (``labels.csv``: OBJID, label,
#: split, as ../shared/data/gz1 ships) names images by SDSS OBJID. classify and gallery
#: instead default to the cutout source's own id column (GalaxyID for Kaggle JPEG folders).
LABELS_ID_COLUMN = "OBJID"

#: ``--id-column`` of every command that reads a labels table.
id_column_option = click.option(
    "--id-column", default=LABELS_ID_COLUMN, show_default=True,
    help="Image id column of the labels table (labelled sets name images by SDSS OBJID, as "
    "gz1 does).")

#: Augmentation options shared by train and compare (compare passes them to every training).
colour_jitter_option = click.option(
    "--colour-jitter/--no-colour-jitter", default=True, show_default=True,
    help="The paper's brightness/contrast/saturation/hue jitter; --no-colour-jitter keeps "
    "each galaxy's (physical) colour.")
weight_decay_option = click.option(
    "--weight-decay", type=Finite(0), default=0.0, show_default=True,
    help="Decoupled (AdamW) weight decay on convolution and linear weights, e.g. 0.05 "
    "(0: plain Adam).")
crop_fraction_option = click.option(
    "--crop-fraction", type=Finite(0, 1, min_open=True),
    help="Centre crop side as a fraction of the image side (default: the paper's 200/424, "
    "or --init's); recorded in the model file, which classify then applies. The random "
    "training crops scale with it.")
mixup_option = click.option(
    "--mixup", type=Finite(0), default=0.0, show_default=True,
    help="Blend each batch with a shuffled copy, weight ~ Beta(MIXUP, MIXUP), e.g. 0.2 "
    "(0: off).")

sam_option = click.option(
    "--sam", type=Finite(0), default=0.0, show_default=True,
    help="Sharpness-aware minimisation radius rho, e.g. 0.05: each step takes the gradient "
    "at weights moved uphill by rho, preferring flat minima; twice the compute (0: off).")


def extra_labels_options(f):
    """--extra-labels, --extra-image-dir, --extra-id-column (train and compare)."""
    for opt in reversed([
        click.option("--extra-labels", type=click.Path(exists=True, dir_okay=False),
                     help="Another labels table (id, label, split): its train-split rows "
                     "of the training classes join training (e.g. Galaxy Zoo 2's spirals); "
                     "images showing a val/test galaxy are dropped."),
        click.option("--extra-image-dir", type=click.Path(exists=True, file_okay=False),
                     help="With --extra-labels: the folder of its images."),
        click.option("--extra-id-column",
                     help="With --extra-labels: its id column (default: its first column)."),
    ]):
        f = opt(f)
    return f


def _extra_recipe(extra_labels: str | None, extra_image_dir: str | None,
                  extra_id_column: str | None) -> dict[str, str | None]:
    """The TrainConfig fields of :func:`extra_labels_options` (the trainer refuses
    --extra-labels without --extra-image-dir)."""
    _refuse_idle(extra_image_dir=(bool(extra_labels), "--extra-labels"),
                 extra_id_column=(bool(extra_labels), "--extra-labels"))
    return {"extra_labels": extra_labels, "extra_image_dir": extra_image_dir,
            "extra_id_column": extra_id_column} if extra_labels else {}


def spin_options(f):
    """--spin-column, --spin-values, --spin-weight (train and compare)."""
    for opt in reversed([
        click.option("--spin-column",
                     help="Learn each spiral's sense of winding as a second task: the labels "
                     "table's column that holds it (Galaxy Zoo 1: gz1_class). Mirrored "
                     "training images swap it; the extra head is not shipped."),
        click.option("--spin-values", default="spiral_cw,spiral_acw", show_default=True,
                     help="With --spin-column: its two mirror-image values."),
        click.option("--spin-weight", type=Finite(0), default=0.5, show_default=True,
                     help="With --spin-column: weight of the winding loss."),
    ]):
        f = opt(f)
    return f


def _spin_recipe(spin_column: str | None, spin_values: str,
                 spin_weight: float) -> dict[str, object]:
    """The TrainConfig fields of :func:`spin_options`."""
    _refuse_idle(spin_values=(bool(spin_column), "--spin-column"),
                 spin_weight=(bool(spin_column), "--spin-column"))
    if not spin_column:
        return {}
    return {"spin_column": spin_column, "spin_weight": spin_weight,
            "spin_values": [v.strip() for v in spin_values.split(",")]}


def _user_set(name: str) -> bool:
    """Whether the running command's parameter ``name`` was given, not left at its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source != click.core.ParameterSource.DEFAULT


def _refuse_idle(**pairs: tuple[bool, str]) -> None:
    """Refuse an option the user set whose partner option is missing, e.g. --distill-weight
    without --teacher: it would do nothing, silently. ``pairs``: parameter name ->
    (partner given, partner's flag)."""
    for name, (given, partner) in pairs.items():
        if not given and _user_set(name):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} does nothing without {partner}")


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Folder of <id>.jpg/.jpeg images.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Model file to write (.amz).")
@id_column_option
@click.option("--arch", default="efficientnet-g0", show_default=True,
              help="efficientnet-g0..g3, efficientnet-b0, mobilenet-v2, or a genotype JSON; "
              "NAME@SIZE (compare's form) sets --resolution too.")
@click.option("--resolution", type=click.IntRange(8, 1024),
              help="Input size (default: the arch's).")
@click.option("--classes", help="Comma-separated class list (default: labels in train split).")
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=Finite(0, min_open=True), default=1e-4, show_default=True,
              help="Adam learning rate.")
@click.option("--schedule", type=click.Choice(["constant", "cosine"]), default="constant",
              show_default=True)
@click.option("--class-weighting", type=click.Choice(["none", "sqrt", "balanced"]),
              default="sqrt", show_default=True,
              help="Loss weights against class imbalance (sqrt: 1/sqrt(count)).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--init", "init_model",
              help="Fine-tune from this model file or shipped model name, e.g. default "
                   "(new classes get a new head).")
@click.option("--freeze-backbone", is_flag=True, help="With --init: train only the head.")
@click.option("--limit", type=click.IntRange(1), help="Use at most N images per split.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint.")
@click.option("--name", help="Model name recorded in outputs (default: file stem).")
@click.option("--label-smoothing", type=Finite(0, 1, max_open=True), default=0.0,
              show_default=True)
@click.option("--threads", type=click.IntRange(1),
              help="torch threads (default: all cores). Same data, seed and threads give the "
              "same model file, bit for bit.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True, help="bf16 autocast (slower than fp32 on most CPUs: "
              "docs/performance.md).")
@click.option("--teacher", "teachers", multiple=True,
              help="Distil from this model (repeat for an ensemble): its mean probabilities "
                   "over the 8 rotations/flips of each training image are soft targets.")
@click.option("--distill-weight", type=Finite(0, 1), default=0.5, show_default=True,
              help="With --teacher: weight of the soft targets against the labels (0: the "
                   "teacher only makes --pseudo-labels).")
@click.option("--pseudo-labels", "pseudo_dir", type=click.Path(file_okay=False),
              help="Folder of unlabelled images: --teacher labels them and the confident ones "
                   "join the training split.")
@click.option("--pseudo-threshold", type=Finite(0, 1, min_open=True), default=0.9,
              show_default=True, help="Smallest teacher probability that makes a pseudo-label.")
@click.option("--ema", type=Finite(0, 1, max_open=True), default=0.0,
              show_default=True,
              help="Decay of a moving average of the weights, e.g. 0.998 (0: off); the "
                   "average is validated and shipped.")
@colour_jitter_option
@mixup_option
@sam_option
@weight_decay_option
@crop_fraction_option
@extra_labels_options
@spin_options
@click.option("--overwrite", is_flag=True, help="Replace an existing model file.")
def train(labels: Path, image_dir: str, output: Path, id_column: str, arch: str,
          resolution: int | None, classes: str | None, epochs: int, batch_size: int,
          lr: float, schedule: str, class_weighting: str, seed: int, device: str,
          init_model: str | None, freeze_backbone: bool, limit: int | None, resume: bool,
          name: str | None, label_smoothing: float, threads: int | None, precision: str,
          teachers: tuple[str, ...], distill_weight: float, pseudo_dir: str | None,
          pseudo_threshold: float, ema: float, colour_jitter: bool, mixup: float,
          sam: float, weight_decay: float, crop_fraction: float | None, extra_labels: str | None,
          extra_image_dir: str | None, extra_id_column: str | None, spin_column: str | None,
          spin_values: str, spin_weight: float, overwrite: bool) -> None:
    """Train a classifier on LABELS (a table with id, label and split columns)."""
    from .inference.load import model_file
    from .training.train import TrainConfig
    from .training.train import train as train_api

    _refuse_idle(distill_weight=(bool(teachers), "--teacher"),
                 pseudo_threshold=(bool(pseudo_dir), "--pseudo-labels"))
    if init_model is not None:
        if _user_set("arch"):
            raise UserError(f"--arch {arch} with --init: a fine-tuned model keeps the "
                            f"network of {init_model} (change the input size with "
                            f"--resolution)")
        init_model = str(model_file(init_model))
    from .training.compare import parse_arch_spec

    # compare's NAME@SIZE works here too, so one --arch can be copied from a compare row.
    arch, size = parse_arch_spec(arch)
    if size is not None and resolution is not None and size != resolution:
        raise UserError(f"--arch {arch}@{size} and --resolution {resolution} disagree; give "
                        f"the input size once")
    cfg = TrainConfig(
        labels=str(labels), image_dir=str(image_dir), output=str(output), id_column=id_column,
        arch=arch, resolution=resolution or size,
        class_names=class_list(classes),
        epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
        class_weighting=class_weighting, seed=seed, device=device, init=init_model,
        freeze_backbone=freeze_backbone, limit=limit, name=name,
        label_smoothing=label_smoothing, threads=threads, precision=precision,
        teacher=[str(model_file(t)) for t in teachers] or None, distill_weight=distill_weight,
        pseudo_labels=pseudo_dir, pseudo_threshold=pseudo_threshold, ema=ema,
        colour_jitter=colour_jitter, mixup=mixup, sam=sam, weight_decay=weight_decay,
        crop_fraction=crop_fraction,
        **_extra_recipe(extra_labels, extra_image_dir, extra_id_column),
        **_spin_recipe(spin_column, spin_values, spin_weight),
    )
    with row_warnings("warnings"):
        result = train_api(cfg, resume=resume, overwrite=overwrite)
    if result["pseudo_labels"]:
        p = result["pseudo_labels"]
        per_class = ", ".join(f"{c} {n}" for c, n in p["kept_per_class"].items())
        click.echo(f"pseudo-labels: {p['kept']} of {p['images']} images at probability >= "
                   f"{p['threshold']} ({per_class}; {p['unreadable']} unreadable, skipped)",
                   err=True)
    if result["extra_labels"]:
        x = result["extra_labels"]
        per_class = ", ".join(f"{c} {n}" for c, n in x["kept_per_class"].items() if n)
        click.echo(f"extra labels: {x['kept']} of {x['rows']} rows of {x['labels']} joined "
                   f"training ({per_class}; {x['other_classes']} of other classes and "
                   f"{x['duplicates_of_eval_images']} val/test galaxies left out)", err=True)
    val = result["val"]
    click.echo(f"wrote {output} (sha256 {result['sha256']}): best epoch "
               f"{result['best_epoch'] + 1}, val accuracy {val['accuracy']:.4f}, weighted F1 "
               f"{val['f1_weighted']:.4f}, temperature {result['temperature']:.3f}", err=True)


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Genotype JSON (for `train --arch FILE` and `scale --base FILE`); the log "
              "(.log.jsonl), reward plot (.png) and checkpoint (.ckpt.pt) go beside it.")
@id_column_option
@click.option("--classes", help="Comma-separated class list (default: labels in train split).")
@click.option("--iterations", type=click.IntRange(1), default=40, show_default=True,
              help="Shared-weight + controller rounds.")
@click.option("--budget", "budget_minutes", type=Finite(0, min_open=True),
              help="Stop after this many minutes (then derive from what was learnt).")
@click.option("--shared-steps", type=click.IntRange(1), default=20, show_default=True)
@click.option("--controller-steps", type=click.IntRange(1), default=10, show_default=True)
@click.option("--target-flops", type=Finite(0, min_open=True), default=20e6, show_default=True,
              help="T of paper Eq. 1, in multiply-adds.")
@click.option("--w", "w", type=Finite(), default=-0.07, show_default=True,
              help="Exponent of Eq. 1 (negative penalises FLOPs above T; see docs/search.md).")
@click.option("--w-below", type=Finite(), help="Exponent when FLOPs <= T (default: --w).")
@click.option("--metric", type=click.Choice(["accuracy", "balanced_accuracy", "macro_f1", "f1",
                                            "likelihood"]), default="macro_f1",
              show_default=True,
              help="Shared-weight validation score in Eq. 1 (accuracy = the paper's; "
              "likelihood = exp(-class-balanced cross-entropy); macro_f1 ranks best in "
              "`astromorph rank`, docs/search.md).")
@click.option("--cost", type=click.Choice(["flops", "latency"]), default="flops",
              show_default=True,
              help="Cost in Eq. 1: multiply-adds (paper), or ONNX Runtime latency on this CPU "
              "(per-op table measured once and cached).")
@click.option("--target-latency", type=Finite(0, min_open=True),
              help="T of Eq. 1 with --cost latency, ms per image (default: Table-2 G0's).")
@click.option("--warmup", type=click.IntRange(0), default=0, show_default=True,
              help="Iterations of uniformly sampled paths before the controller learns.")
@click.option("--bn-calibration", type=click.IntRange(0), default=512, show_default=True,
              help="Training images that recalibrate each candidate's batch norms before it "
                   "is judged (0: shared running statistics).")
@click.option("--threads", type=click.IntRange(1), help="torch threads (default: all cores).")
@click.option("--limit", type=click.IntRange(1), help="Use at most N images per split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the checkpoint beside OUTPUT.")
def search(labels: Path, image_dir: str, output: Path, id_column: str, classes: str | None,
           iterations: int, budget_minutes: float | None, shared_steps: int,
           controller_steps: int, target_flops: float, w: float, w_below: float | None,
           metric: str, cost: str, target_latency: float | None, warmup: int,
           bn_calibration: int, threads: int | None, limit: int | None, seed: int,
           resume: bool) -> None:
    """ENAS search for a baseline network on LABELS (train split trains, val rewards)."""
    import torch

    from .search.enas import SearchConfig
    from .search.enas import search as search_api

    if threads:
        torch.set_num_threads(threads)

    cfg = SearchConfig(
        output=str(output), labels=str(labels), image_dir=str(image_dir), id_column=id_column,
        class_names=class_list(classes),
        iterations=iterations, budget_minutes=budget_minutes, shared_steps=shared_steps,
        controller_steps=controller_steps, target_flops=target_flops, w=w, w_below=w_below,
        metric=metric, cost=cost, target_latency_ms=target_latency, warmup=warmup,
        bn_calibration=bn_calibration, limit=limit, seed=seed)
    r = search_api(cfg, resume=resume)
    click.echo(f"wrote {output}: {' '.join(b.to_string() for b in r['arch'].blocks)}; "
               f"reward {r['reward']:.4f}, {metric} {r[metric]:.4f} (shared weights), "
               f"{r['macs'] / 1e6:.2f} M MACs after {r['iterations']} iterations "
               f"({r['minutes']:.1f} min)", err=True)
    if r["reference"]:
        ref = r["reference"]
        click.echo(f"paper G0 under the same shared weights: reward {ref['reward']:.4f}, "
                   f"{metric} {ref[metric]:.4f}, {ref['macs'] / 1e6:.2f} M MACs", err=True)


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--supernet", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="A search's output JSON (its checkpoint lies beside it).")
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), required=True,
              help="ranking.json and ranking.png (a rerun continues an interrupted check).")
@id_column_option
@click.option("--n", "n", type=click.IntRange(3), default=12, show_default=True,
              help="Architectures, evenly spaced in multiply-adds across the space.")
@click.option("--epochs", type=click.IntRange(1), default=6, show_default=True,
              help="Stand-alone training epochs per architecture.")
@click.option("--lr", type=Finite(0, min_open=True), default=1e-3, show_default=True)
@click.option("--seeds", default="0", show_default=True,
              help="Comma-separated stand-alone training seeds (mean and spread).")
@click.option("--sample-seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1), help="torch threads (default: all cores).")
@click.option("--limit", type=click.IntRange(1), help="Use at most N images per split.")
def rank(labels: Path, image_dir: str, supernet: Path, out_dir: Path, id_column: str, n: int,
         epochs: int, lr: float, seeds: str, sample_seed: int, threads: int | None,
         limit: int | None) -> None:
    """Check that a search's supernet ranks architectures as stand-alone training does
    (Kendall's tau over N architectures; scatter plot)."""
    from .search.ranking import RankConfig
    from .search.ranking import rank as rank_api

    r = rank_api(RankConfig(labels=str(labels), image_dir=str(image_dir),
                            supernet=str(supernet), output=str(out_dir), id_column=id_column,
                            n=n, epochs=epochs, lr=lr, seeds=tuple(_int_list(seeds, "--seeds")),
                            sample_seed=sample_seed, threads=threads, limit=limit))
    click.echo(f"{len(r['rows'])} architectures, supernet after {r['supernet_iterations']} "
               f"iterations, stand-alone {epochs} epochs x {len(r['settings']['seeds'])} seeds")
    from .search.ranking import RANK_METRICS

    click.echo("Kendall tau (p), rows: supernet score, columns: stand-alone score; tied: one "
               "side's scores are all equal, tau undefined\n")
    click.echo("| supernet | " + " | ".join(RANK_METRICS) + " |")
    click.echo("|---" * (len(RANK_METRICS) + 1) + "|")
    for a in RANK_METRICS:
        cells = [r["kendall"][f"{a} vs {b}"] for b in RANK_METRICS]
        click.echo(f"| {a} | " + " | ".join("tied" if t["tau"] is None else
                                            f"{t['tau']:+.2f} ({t['p']:.2f})" for t in cells)
                   + " |")
    click.echo(f"wrote {out_dir / 'ranking.json'} and {out_dir / 'ranking.png'}", err=True)


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--base", default="efficientnet-g0", show_default=True,
              help="Baseline: a variant name or a genotype JSON from `astromorph search`.")
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), required=True)
@id_column_option
@click.option("--classes", help="Comma-separated class list (default: labels in train split).")
@click.option("--epochs", type=click.IntRange(1), default=3, show_default=True,
              help="Training epochs per candidate.")
@click.option("--max-candidates", type=click.IntRange(1), default=6, show_default=True)
@click.option("--budget", "budget_minutes", type=Finite(0, min_open=True),
              help="Start no new candidate after this many minutes.")
@click.option("--phis", type=click.IntRange(1), default=3, show_default=True,
              help="Write G1..G<phis>.")
@click.option("--tolerance", type=Finite(0), default=0.1, show_default=True,
              help="Accept candidates whose nominal alpha*beta^2*gamma^2 and realised "
              "(after rounding) G1/G0 multiply-add ratio are within this of 2.")
@click.option("--lr", type=Finite(0, min_open=True), default=1e-3, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--limit", type=click.IntRange(1), help="Use at most N images per split.")
@click.option("--seeds", default="0,1", show_default=True,
              help="Comma-separated seeds: each candidate is trained once per seed and "
              "chosen by the mean.")
@click.option("--hold-ratio", type=Finite(0), default=2.0, show_default=True,
              help="Re-round each family member's input size so every phi step costs about "
                   "this many times the one before (0: Eq. 6's sizes as they round).")
@click.option("--threads", type=click.IntRange(1),
              help="torch threads per training (default: all cores).")
@click.option("--triple", help="ALPHA,BETA,GAMMA: skip the grid search and write G1..Gn "
              "with these coefficients (e.g. the paper's 1.15,1.1,1.2, to scale a searched "
              "baseline exactly as Table 2 scales G0).")
@click.option("--prefix", default="g", show_default=True,
              help="Family files are OUT_DIR/<prefix>1.json ...; the file stem names the "
                   "network in `compare`.")
@click.option("--resume", is_flag=True, help="Skip candidates already in OUT_DIR/scale.json.")
def scale(labels: Path, image_dir: str, base: str, out_dir: Path, id_column: str,
          classes: str | None, epochs: int, max_candidates: int,
          budget_minutes: float | None, phis: int, tolerance: float, lr: float,
          batch_size: int, limit: int | None, seeds: str, hold_ratio: float,
          threads: int | None, triple: str | None, prefix: str, resume: bool) -> None:
    """Grid-search compound-scaling alpha, beta, gamma at phi=1, then write G1..Gn."""
    from .models.arch import get_arch
    from .search.scale import scale_search, write_family

    if triple is not None:
        try:
            a, b, g = (float(x) for x in triple.split(","))
        except ValueError:
            raise click.BadParameter(f"{triple!r}: expected three numbers ALPHA,BETA,GAMMA",
                                     param_hint="--triple") from None
        if not all(1 <= x <= 2 for x in (a, b, g)):  # also rejects nan and inf
            raise click.BadParameter(f"{triple!r}: each coefficient must be between 1 and 2 "
                                     "(the scaling per phi step)", param_hint="--triple")
        if a == b == g == 1:
            raise click.BadParameter(f"{triple!r} scales nothing: every Gn would be G0 (at "
                                     "most its input re-rounded); raise at least one "
                                     "coefficient above 1", param_hint="--triple")
        k = len(class_list(classes) or []) or 5
        family, files, ratios = write_family(get_arch(base), a, b, g, phis, out_dir,
                                             prefix=prefix, hold_ratio=hold_ratio or None,
                                             num_classes=k)
        click.echo(f"alpha {a:.2f}, beta {b:.2f}, gamma {g:.2f} (given, no grid search); "
                   f"realised cost ratios {_family_summary(ratios, family)}; wrote "
                   + ", ".join(str(f) for f in files))
        return
    r = scale_search(get_arch(base), labels, image_dir, out_dir, id_column=id_column,
                     class_names=class_list(classes),
                     epochs=epochs, max_candidates=max_candidates,
                     budget_minutes=budget_minutes, phis=phis, tolerance=tolerance,
                     resume=resume, lr=lr, batch_size=batch_size, limit=limit,
                     seeds=tuple(_int_list(seeds, "--seeds")), schedule="cosine",
                     hold_ratio=hold_ratio or None, prefix=prefix, threads=threads)
    click.echo("alpha  beta  gamma  a*b^2*g^2  G1/G0  input  MACs(M)  val acc (mean ± std)")
    for c in sorted(r["candidates"].values(), key=lambda c: -c["val_accuracy_mean"]):
        click.echo(f"{c['alpha']:.2f}  {c['beta']:.2f}  {c['gamma']:.2f}   "
                   f"{c['flops_factor']:.3f}   {c['realised_ratio']:.2f}   {c['resolution']:>3}  "
                   f"{c['macs'] / 1e6:7.2f}  {c['val_accuracy_mean']:.4f} ± "
                   f"{c['val_accuracy_std']:.4f}")
    b, p = r["best"], r["paper"]
    click.echo(f"chosen alpha {b['alpha']:.2f}, beta {b['beta']:.2f}, gamma {b['gamma']:.2f} "
               f"(paper: {p['alpha']}, {p['beta']}, {p['gamma']}); {r['choice']}; realised "
               f"cost ratios {_family_summary(r['family_ratios'], r['family'])}; wrote "
               + ", ".join(str(f) for f in r["files"]))


def _family_summary(ratios: list[float], family: list) -> str:
    """``G1/G0 2.03, G2/G1 1.99 (g1 43 px, g2 49 px)``: each step's cost and each size."""
    return (", ".join(f"G{i + 1}/G{i} {x:.2f}" for i, x in enumerate(ratios)) + " ("
            + ", ".join(f"{a.name} {a.resolution} px" for a in family) + ")")


@cli.command("kaggle-select")
@click.argument("solutions", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="labels.csv for `astromorph train --id-column GalaxyID`.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True)
def kaggle_select(solutions: Path, output: Path, seed: int, overwrite: bool) -> None:
    """The paper's Table-1 five-class sample from Kaggle's training_solutions_rev1.csv."""
    from .catalog_io import read_catalog, write_catalog
    from .training.kaggle import select_table1

    with row_warnings():
        out = select_table1(read_catalog(solutions, "csv"), seed=seed)
    write_catalog(out, output, "csv", overwrite=overwrite)
    counts = ", ".join(f"{k} {v}" for k, v in out.meta["counts"].items())
    invalid = f", {out.meta['invalid']} with unusable votes" if out.meta["invalid"] else ""
    click.echo(f"wrote {output}: {len(out)} galaxies ({counts}); "
               f"{out.meta['ambiguous']} ambiguous{invalid} left out", err=True)


@cli.command("split")
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The labels table with its new split column (any catalog format).")
@id_column_option
@click.option("--fractions", default="0.8,0.1,0.1", show_default=True,
              help="train,val,test shares, per class.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def split_command(labels: Path, output: Path, id_column: str, fractions: str, seed: int,
                  overwrite: bool) -> None:
    """Add a stratified train/val/test `split` column to LABELS (id, label), for `train`.

    Each class is shuffled with SEED and cut by the fractions (gz1's are 80/10/10), so
    every split holds every class in proportion; the same seed gives the same splits.
    """
    from .catalog_io import read_catalog, write_catalog
    from .training.splits import add_split_column

    try:
        shares = tuple(float(f) for f in fractions.split(","))
    except ValueError:
        raise UserError(f"--fractions takes three numbers, train,val,test, not "
                        f"{fractions!r}") from None
    if output.resolve() == labels.resolve():
        raise UserError(f"output {output} is the input table; write the split table to "
                        f"another file")
    check_output_dirs(output)
    with row_warnings("rows"):
        out = add_split_column(read_catalog(labels), id_column, fractions=shares, seed=seed)
    counts = out.meta.pop("split_counts")
    write_catalog(out, output, overwrite=overwrite)
    total = {s: sum(c[s] for c in counts.values()) for s in ("train", "val", "test")}
    click.echo(f"wrote {output}: train {total['train']}, val {total['val']}, test "
               f"{total['test']} of {len(out)} rows; per class (train/val/test): "
               + ", ".join(f"{k} {v['train']}/{v['val']}/{v['test']}"
                           for k, v in counts.items()), err=True)


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--arch", "archs", default="efficientnet-g0,efficientnet-g1,efficientnet-g2,"
              "efficientnet-g3,efficientnet-b0,mobilenet-v2", show_default=True,
              help="Comma-separated architectures; NAME@SIZE trains at another input size.")
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), required=True,
              help="Model files, JSON reports and confusion PNGs (reused on a rerun).")
@click.option("--md", type=click.Path(path_type=Path), help="Write the Markdown table here.")
@id_column_option
@click.option("--classes", help="Comma-separated class list (default: labels in train split).")
@click.option("--epochs", type=click.IntRange(1), default=12, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=Finite(0, min_open=True), default=1e-3, show_default=True)
@click.option("--schedule", type=click.Choice(["constant", "cosine"]), default="cosine",
              show_default=True)
@click.option("--class-weighting", type=click.Choice(["none", "sqrt", "balanced"]),
              default="sqrt", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Comma-separated seeds: one training each; the table gives mean ± std.")
@click.option("--threads", type=click.IntRange(1), help="torch threads per training.")
@click.option("--label-smoothing", type=Finite(0, 1, max_open=True), default=0.0,
              show_default=True)
@click.option("--teacher", "teachers", multiple=True, help="As for train: distil from it.")
@click.option("--distill-weight", type=Finite(0, 1), default=0.5, show_default=True)
@click.option("--pseudo-labels", "pseudo_dir", type=click.Path(file_okay=False),
              help="As for train: unlabelled images the teacher labels.")
@click.option("--pseudo-threshold", type=Finite(0, 1, min_open=True), default=0.9,
              show_default=True)
@click.option("--ema", type=Finite(0, 1, max_open=True), default=0.0,
              show_default=True,
              help="As for train: decay of a moving average of the weights (0: off).")
@colour_jitter_option
@mixup_option
@sam_option
@weight_decay_option
@crop_fraction_option
@extra_labels_options
@spin_options
@click.option("--device", default="cpu", show_default=True)
def compare(labels: Path, image_dir: str, archs: str, out_dir: Path, md: Path | None,
            id_column: str, classes: str | None, epochs: int, batch_size: int, lr: float,
            schedule: str, class_weighting: str, seeds: str, threads: int | None,
            label_smoothing: float, teachers: tuple[str, ...], distill_weight: float,
            pseudo_dir: str | None, pseudo_threshold: float, ema: float, colour_jitter: bool,
            mixup: float, sam: float, weight_decay: float, crop_fraction: float | None,
            extra_labels: str | None, extra_image_dir: str | None,
            extra_id_column: str | None, spin_column: str | None, spin_values: str,
            spin_weight: float, device: str) -> None:
    """Train ARCHS with one recipe and several seeds on LABELS; tabulate val and test.

    Every model file is kept in OUT_DIR (paths printed), so any row can be re-evaluated."""
    from .fileio import atomic_write_text
    from .inference.load import model_file
    from .training.compare import compare as compare_api
    from .training.compare import markdown_table, per_class_table

    check_output_dirs(md)
    _refuse_idle(distill_weight=(bool(teachers), "--teacher"),
                 pseudo_threshold=(bool(pseudo_dir), "--pseudo-labels"))
    extra = _extra_recipe(extra_labels, extra_image_dir, extra_id_column)
    extra.update(_spin_recipe(spin_column, spin_values, spin_weight))
    with row_warnings("warnings"):
        reports = compare_api(
            labels, image_dir, [a.strip() for a in archs.split(",") if a.strip()], out_dir,
            id_column=id_column,
            classes=class_list(classes),
            epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
            class_weighting=class_weighting, seeds=_int_list(seeds, "--seeds"), threads=threads,
            label_smoothing=label_smoothing, device=device, distill_weight=distill_weight,
            ema=ema, colour_jitter=colour_jitter, mixup=mixup, sam=sam, weight_decay=weight_decay,
            crop_fraction=crop_fraction,
            teacher=[str(model_file(t)) for t in teachers] or None,
            **({"pseudo_labels": pseudo_dir, "pseudo_threshold": pseudo_threshold}
               if pseudo_dir else {}), **extra)
    table = markdown_table(reports)
    for r in reports:  # per-class test metrics of each architecture, mean ± std over seeds
        n = len(r["runs"])
        table += f"\nTest per class, {r['arch']} ({n} seed{'s' if n > 1 else ''}):\n\n"
        table += per_class_table(r)
    if md:  # before printing, as evaluate's --json
        atomic_write_text(md, table)
    for r in reports:
        for run in r["runs"]:
            click.echo(f"model file: {run['model']} (seed {run['seed']})", err=True)
    click.echo(table)


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--model", "models", multiple=True,
              help="Registered model name or model file (default: default). Repeat it to "
                   "score the ensemble (mean probabilities) of several models.")
@id_column_option
@click.option("--split", default="test", show_default=True)
@click.option("--backend", type=click.Choice(["onnx", "torch"]), default="onnx",
              show_default=True)
@click.option("--png", type=click.Path(path_type=Path), callback=figure_path,
              help="Write the confusion matrix here (.png, .pdf, .svg).")
@click.option("--json", "json_out", type=click.Path(path_type=Path),
              help="Write the full report as JSON.")
@click.option("--no-timing", is_flag=True, help="Skip the CPU latency measurement.")
@click.option("--fast-decode", is_flag=True, help="As for classify.")
@click.option("--tta", is_flag=True, help="As for classify: mean over 8 rotations/flips.")
def evaluate(labels: Path, image_dir: str, models: tuple[str, ...], id_column: str, split: str,
             backend: str, png: Path | None, json_out: Path | None, no_timing: bool,
             fast_decode: bool, tta: bool) -> None:
    """Score a model on one split of LABELS through the classify pipeline."""
    from .training.evaluate import evaluate as evaluate_api

    check_output_dirs(png, json_out)
    with row_warnings():  # a split with many missing images: the first few, then a count
        r = evaluate_api(list(models) or None, labels, image_dir, id_column, split, backend,
                         png=png, timing=not no_timing, fast_decode=fast_decode, tta=tta)
    if json_out:  # before printing: a closed pipe (`| head`) must not cost the file
        from .fileio import atomic_write_text

        atomic_write_text(json_out, json.dumps(r, indent=2))
    click.echo(f"{r['model']}{' +TTA' if tta else ''} on {split}: n={r['n']} accuracy "
               f"{r['accuracy']:.4f} macro-F1 {r['f1_macro']:.4f}  weighted "
               f"P {r['precision_weighted']:.4f} R {r['recall_weighted']:.4f} "
               f"F1 {r['f1_weighted']:.4f}  ECE {r['ece']:.4f}")
    for name, m in r["per_class"].items():
        unseen = "" if m["scored"] else " (not in the split, nor predicted: left out of " \
                                        "macro-F1)"
        click.echo(f"  {name:<12} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} "
                   f"n={m['support']}{unseen}")
    left = [f"{r[k]} {what}" for k, what in (
        ("failed_rows", "with no usable image (flagged, warnings above)"),
        ("skipped_unknown_label", "labelled with a class the model does not have")) if r[k]]
    if left:  # the figures above are then over fewer rows than the split holds
        click.echo(f"  left out of the scores: {'; '.join(left)}")
    if "params" in r:
        click.echo(f"  params {r['params']}, MACs {r['macs']}, input {r['input_size']} px")
    if "latency_ms" in r:
        click.echo(f"  CPU latency {r['latency_ms']:.2f} ms/image (batch 1), "
                   f"{r['images_per_s']:.0f} images/s (batch 256, model only)")
