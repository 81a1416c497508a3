"""The ``astromorph`` command: thin wrappers over the Python API."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import click

from .errors import EXIT_INTERRUPTED, EXIT_NOTHING_CLASSIFIED, ExitStatus, UserError

MAX_ROW_WARNINGS = 10


class _RowWarnings(logging.Handler):
    """Print the first few flagged rows, count the rest (a million-row run stays readable)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.count <= MAX_ROW_WARNINGS:
            click.echo(f"warning: {record.getMessage()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="astro_morph")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Galaxy morphology columns for astronomy catalogs."""
    ctx.obj = {"debug": debug}


def default_output(path: Path) -> Path:
    """``cat.fits`` -> ``cat_morph.fits`` beside the input."""
    name = path.name
    for suffix in (".fits.gz", *sorted({p.suffix for p in [path]})):
        if name.lower().endswith(suffix.lower()) and suffix:
            return path.with_name(name[: -len(suffix)] + "_morph" + name[-len(suffix):])
    return path.with_name(name + "_morph")


@cli.command()
@click.argument("catalog", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output catalog (default: <input>_morph.<ext>). Format from its suffix.")
@click.option("--source", default="galaxyzoo", show_default=True, help="Cutout source.")
@click.option("--image-dir", type=click.Path(path_type=Path), help="Folder of cutout images.")
@click.option("--id-column", default="GalaxyID", show_default=True,
              help="Column naming the image (<id>.jpg / <id>.jpeg).")
@click.option("--path-column", help="Column with image paths relative to --image-dir.")
@click.option("--image", "images", multiple=True, type=click.Path(path_type=Path),
              help="FITS mosaic, one per band, reddest first (--source fits).")
@click.option("--ra-column", default="RA", show_default=True,
              help="RA column (case-insensitive; degrees, angle units or sexagesimal).")
@click.option("--dec-column", default="DEC", show_default=True)
@click.option("--size-column", help="Galaxy radius column in arcsec (petroR90-like); "
              "cutouts then span Galaxy Zoo's 10.2 radii.")
@click.option("--size-arcsec", type=click.FloatRange(0, min_open=True),
              help="Fixed cutout side in arcsec (network sources; default 60).")
@click.option("--pixels", type=click.IntRange(16, 2048),
              help="Cutout side in pixels asked of a network source (default 128).")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Network sources' response cache (default: $ASTROMORPH_CACHE or "
              "astropy's cache dir).")
@click.option("--offline", is_flag=True,
              help="Network sources use the cache only; uncached rows are flagged.")
@click.option("--retries", type=click.IntRange(0, 20),
              help="Network sources: attempts after the first per request (default 4).")
@click.option("--timeout", type=click.FloatRange(0, min_open=True),
              help="Network sources: seconds to wait for a response (default 30).")
@click.option("--model", help="Registered model name or model file (.amz).")
@click.option("--backend", type=click.Choice(["onnx", "torch"]), default="onnx",
              show_default=True)
@click.option("--device", default="cpu", show_default=True,
              help="cpu, cuda, cuda:N or auto (torch backend).")
@click.option("--batch-size", type=click.IntRange(1),
              help="Images per network call (default: the backend's: 32 on CPU, 512 on CUDA).")
@click.option("--chunk-size", type=click.IntRange(1), default=1024, show_default=True,
              help="Rows read and prepared at a time.")
@click.option("--centring", default="centre-crop", show_default=True,
              help="Centring/cropping step (centre-crop, recentre, or a plugin's).")
@click.option("--crop-fraction", type=click.FloatRange(0, 1, min_open=True),
              help="Crop side as a fraction of the image (default: the paper's 200/424).")
@click.option("--prefix", default="morph_", show_default=True, help="Added columns' prefix.")
@click.option("--format", "in_format", help="Input format when the suffix does not tell.")
@click.option("--output-format", help="Output format when the suffix does not tell.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--workers", type=click.IntRange(1),
              help="Decoding and centring threads (default: one per core, at most 32).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: on a terminal).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from <output>.partial/.")
@click.option("--fast-decode", is_flag=True,
              help="Decode JPEGs at reduced scale (libjpeg DCT) when the crop allows: faster, "
              "pixels differ slightly from a full decode.")
@click.option("--tta", is_flag=True,
              help="Average over the 8 rotations/flips of each cutout (8x the model time).")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run partitions on dask.distributed: a scheduler address, or local[:N] "
              "for N worker processes on this machine.")
@click.option("--partition-rows", type=click.IntRange(1),
              help="Rows per Dask task (default 8 x --chunk-size).")
def classify(catalog: Path, output: Path | None, source: str, image_dir: Path | None,
             id_column: str, path_column: str | None, images: tuple[Path, ...],
             ra_column: str, dec_column: str, size_column: str | None,
             size_arcsec: float | None, pixels: int | None, cache_dir: Path | None,
             offline: bool, retries: int | None, timeout: float | None,
             model: str | None, backend: str,
             device: str, batch_size: int, chunk_size: int, centring: str,
             crop_fraction: float | None, prefix: str, in_format: str | None,
             output_format: str | None, overwrite: bool, workers: int | None,
             progress: bool | None, resume: bool, fast_decode: bool, tta: bool,
             dask_address: str | None,
             partition_rows: int | None) -> None:
    """Classify every row of CATALOG and write it with morphology columns."""
    import numpy as np

    from .catalog_io import check_writable, guess_format, read_catalog, write_catalog
    from .journal import OutputLock, remove_stale_temps

    output = output or default_output(catalog)
    journal = output.with_name(output.name + ".partial")
    if output.resolve() == catalog.resolve():
        raise UserError(f"output {output} is the input catalog, which astromorph never "
                        f"modifies; choose another -o")
    guess_format(output, output_format, "--output-format")  # fail before the run, not after
    if not output.parent.is_dir():
        raise UserError(f"output directory does not exist: {output.parent}")
    if not os.access(output.parent, os.W_OK):
        raise UserError(f"cannot write to output directory {output.parent}")
    if output.exists() and not overwrite:
        raise UserError(f"output {output} exists; pass --overwrite to replace it")
    table = read_catalog(catalog, in_format)
    if len(table) == 0:
        raise UserError(f"catalog {catalog} has no rows")
    check_writable(table, output, output_format)
    options = dict(
        source=source, centring=centring,
        centring_options={"crop_fraction": crop_fraction} if crop_fraction else None,
        prefix=prefix, workers=workers, fast_decode=fast_decode, tta=tta,
        image_dir=image_dir, id_column=id_column, path_column=path_column,
        image=list(images) or None, ra_column=ra_column, dec_column=dec_column,
        size_column=size_column, size_arcsec=size_arcsec, offline=offline,
        **({"pixels": pixels} if pixels else {}),
        **({"cache_dir": cache_dir} if cache_dir else {}),
        **({"retries": retries} if retries is not None else {}),
        **({"timeout": timeout} if timeout is not None else {}),
    )
    handler = _RowWarnings()
    logging.getLogger("astro_morph").addHandler(handler)
    # One run per output: a second one would share the journal and the temp-file names.
    lock = OutputLock(output).acquire()
    try:
        for stale in remove_stale_temps(output):
            click.echo(f"note: removed {stale.name}, left by an interrupted write", err=True)
        if journal.exists() and overwrite and not resume and not dask_address:
            shutil.rmtree(journal, ignore_errors=True)
            click.echo(f"note: --overwrite without --resume: starting afresh (removed the "
                       f"unfinished run in {journal})", err=True)
        try:
            out = _run_classify(table, model, backend, device, batch_size, chunk_size,
                                progress, journal, resume, dask_address, partition_rows,
                                options)
        except KeyboardInterrupt:
            kept = (f"; the finished chunks are kept in {journal}: rerun the same command "
                    f"with --resume to continue" if journal.is_dir() and any(journal.iterdir())
                    else "")
            raise ExitStatus(f"Interrupted{kept}", EXIT_INTERRUPTED) from None
        try:
            write_catalog(out, output, output_format, overwrite=overwrite)
        except UserError as exc:
            if journal.is_dir():
                raise UserError(f"{exc}; the classified rows are kept in {journal}: fix the "
                                f"cause and rerun the same command with --resume") from None
            raise
        shutil.rmtree(journal, ignore_errors=True)
    finally:
        lock.release()
        logging.getLogger("astro_morph").removeHandler(handler)
    flags = out[f"{prefix}flags"]
    n_flagged = int((flags != 0).sum())
    if handler.count > MAX_ROW_WARNINGS:
        click.echo(f"warning: ... {handler.count - MAX_ROW_WARNINGS} more flagged rows", err=True)
    click.echo(f"wrote {output}: {len(out)} rows, {len(out) - n_flagged} classified cleanly, "
               f"{n_flagged} flagged", err=True)
    n_labelled = int((~np.ma.getmaskarray(out[f"{prefix}label"])).sum())
    if n_labelled == 0:
        raise ExitStatus(f"no row was classified (all {len(out)} flagged; see {prefix}flags); "
                         f"the output is written, the exit status says so",
                         EXIT_NOTHING_CLASSIFIED)


def _run_classify(table, model, backend, device, batch_size, chunk_size, progress, journal,
                  resume, dask_address, partition_rows, options):
    """The run itself: single process (with the resume journal) or Dask partitions."""
    from .api import classify as classify_api

    if not dask_address:
        return classify_api(table, model=model, backend=backend, device=device,
                            batch_size=batch_size, chunk_size=chunk_size, progress=progress,
                            journal_dir=journal, resume=resume, **options)
    if resume:
        raise UserError("--resume is for single-process runs; a --dask run is cut "
                        "into independent partitions: rerun it whole")
    from .scaleout import classify_dask, connect

    client = connect(dask_address)
    try:
        return classify_dask(table, client, model=model, backend=backend, device=device,
                             batch_size=batch_size, chunk_size=chunk_size,
                             partition_rows=partition_rows, progress=progress, **options)
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if dask_address.startswith("local") and cluster is not None:
            cluster.close()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List loaded plugins and what each registers."""
    from .plugins import list_plugins

    info = list_plugins()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for entry in info:
        version = f" ({entry['version']})" if "version" in entry else ""
        click.echo(f"{entry['name']}{version}")
        for key in ("sources", "centring", "models"):
            if key in entry:
                click.echo(f"  {key}: {', '.join(entry[key])}")
        click.echo(f"  hooks: {', '.join(entry['hooks'])}")


@cli.command()
@click.option("--num-classes", type=click.IntRange(1), default=5, show_default=True)
def models(num_classes: int) -> None:
    """List registered models, and the architecture family next to the paper's figures."""
    from .models.arch import VARIANTS
    from .models.flops import count
    from .plugins import get_models

    registered = get_models()
    click.echo("Registered models:")
    if not registered:
        click.echo("  (none: pass --model FILE to classify)")
    for name, entry in sorted(registered.items()):
        click.echo(f"  {name:<24} {entry.description}  [{entry.plugin}]")
    click.echo("")
    click.echo(f"Architectures ({num_classes} classes). MACs = multiply-adds (the paper's "
               "tables use this convention); Eq.13 = the paper's Eq. 13-14 FLOPs.")
    header = (f"  {'name':<18}{'input':>6}{'params':>11}{'MACs':>10}{'Eq.13':>10}"
              f"{'paper params':>14}{'paper FLOPs':>13}")
    click.echo(header)
    for name, arch in VARIANTS.items():
        c = count(arch, num_classes)
        paper = PAPER_FIGURES.get(name, ("-", "-"))
        click.echo(f"  {name:<18}{arch.resolution:>6}{c.params / 1e6:>10.3f}M"
                   f"{c.macs / 1e6:>9.1f}M{c.flops_eq13 / 1e6:>9.1f}M"
                   f"{paper[0]:>14}{paper[1]:>13}")
    click.echo("Paper figures: Table 4 (G3, B0 with a 1000-class ImageNet head), Sec. 5.1 (G2), "
               "Sec. 5.1 'G0 11x fewer FLOPs than B0'. MobileNetV2: Sandler et al. 2018.")


#: Figures quoted in the paper (and MobileNetV2's own paper) for comparison only.
PAPER_FIGURES = {
    "efficientnet-g0": ("-", "~35M"),
    "efficientnet-g2": ("0.85M", "79M"),
    "efficientnet-g3": ("2.17M", "210M"),
    "efficientnet-b0": ("5.29M", "390M"),
    "mobilenet-v2": ("3.4M", "300M"),
}


@cli.command("export-onnx")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="A .amz model file (weights + ONNX) or a bare .onnx file.")
@click.option("--overwrite", is_flag=True)
def export_onnx_cmd(model: Path, output: Path, overwrite: bool) -> None:
    """Add an ONNX graph to MODEL (written to OUTPUT), for the ONNX Runtime backend."""
    import onnx

    from .inference.deploy import export_onnx
    from .models.model_file import read_bundle, write_bundle

    bundle = read_bundle(model)
    bundle.onnx = export_onnx(bundle)
    if output.suffix.lower() == ".onnx":
        if output.exists() and not overwrite:
            raise UserError(f"output {output} exists; pass --overwrite to replace it")
        proto = onnx.load_from_string(bundle.onnx)
        for key in ("name", "class_names", "input_size", "temperature"):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, json.dumps(bundle.config.get(key))
        output.write_bytes(proto.SerializeToString())
        click.echo(f"wrote {output}", err=True)
        return
    sha = write_bundle(bundle, output, overwrite=overwrite)
    click.echo(f"wrote {output} (sha256 {sha})", err=True)


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Folder of <id>.jpg/.jpeg images.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Model file to write (.amz).")
@click.option("--id-column", default="OBJID", show_default=True)
@click.option("--arch", default="efficientnet-g0", show_default=True,
              help="efficientnet-g0..g3, efficientnet-b0, mobilenet-v2, or a genotype JSON.")
@click.option("--resolution", type=click.IntRange(8), help="Input size (default: the arch's).")
@click.option("--classes", help="Comma-separated class list (default: labels in train split).")
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate.")
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
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True)
@click.option("--threads", type=click.IntRange(1),
              help="torch threads (default: all cores). Same data, seed and threads give the "
              "same model file, bit for bit.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True, help="bf16 autocast (slower than fp32 on most CPUs: "
              "docs/performance.md).")
@click.option("--overwrite", is_flag=True, help="Replace an existing model file.")
def train(labels: Path, image_dir: str, output: Path, id_column: str, arch: str,
          resolution: int | None, classes: str | None, epochs: int, batch_size: int,
          lr: float, schedule: str, class_weighting: str, seed: int, device: str,
          init_model: str | None, freeze_backbone: bool, limit: int | None, resume: bool,
          name: str | None, label_smoothing: float, threads: int | None, precision: str,
          overwrite: bool) -> None:
    """Train a classifier on LABELS (a table with id, label and split columns)."""
    from .models.registry import model_path
    from .training.train import TrainConfig
    from .training.train import train as train_api

    if init_model is not None:
        init_model = str(model_path(init_model))
    cfg = TrainConfig(
        labels=str(labels), image_dir=str(image_dir), output=str(output), id_column=id_column,
        arch=arch, resolution=resolution,
        class_names=[c.strip() for c in classes.split(",")] if classes else None,
        epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
        class_weighting=class_weighting, seed=seed, device=device, init=init_model,
        freeze_backbone=freeze_backbone, limit=limit, name=name,
        label_smoothing=label_smoothing, threads=threads, precision=precision,
    )
    result = train_api(cfg, resume=resume, overwrite=overwrite)
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
@click.option("--id-column", default="OBJID", show_default=True)
@click.option("--classes", help="Comma-separated class list (default: labels in train split).")
@click.option("--iterations", type=click.IntRange(1), default=40, show_default=True,
              help="Shared-weight + controller rounds.")
@click.option("--budget", "budget_minutes", type=click.FloatRange(0, min_open=True),
              help="Stop after this many minutes (then derive from what was learnt).")
@click.option("--shared-steps", type=click.IntRange(1), default=20, show_default=True)
@click.option("--controller-steps", type=click.IntRange(1), default=10, show_default=True)
@click.option("--target-flops", type=float, default=20e6, show_default=True,
              help="T of paper Eq. 1, in multiply-adds.")
@click.option("--w", "w", type=float, default=-0.07, show_default=True,
              help="Exponent of Eq. 1 (negative penalises FLOPs above T; see docs/search.md).")
@click.option("--w-below", type=float, help="Exponent when FLOPs <= T (default: --w).")
@click.option("--metric", type=click.Choice(["accuracy", "f1"]), default="accuracy",
              show_default=True)
@click.option("--limit", type=click.IntRange(1), help="Use at most N images per split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the checkpoint beside OUTPUT.")
def search(labels: Path, image_dir: str, output: Path, id_column: str, classes: str | None,
           iterations: int, budget_minutes: float | None, shared_steps: int,
           controller_steps: int, target_flops: float, w: float, w_below: float | None,
           metric: str, limit: int | None, seed: int, resume: bool) -> None:
    """ENAS search for a baseline network on LABELS (train split trains, val rewards)."""
    from .search.enas import SearchConfig
    from .search.enas import search as search_api

    cfg = SearchConfig(
        output=str(output), labels=str(labels), image_dir=str(image_dir), id_column=id_column,
        class_names=[c.strip() for c in classes.split(",")] if classes else None,
        iterations=iterations, budget_minutes=budget_minutes, shared_steps=shared_steps,
        controller_steps=controller_steps, target_flops=target_flops, w=w, w_below=w_below,
        metric=metric, limit=limit, seed=seed)
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
@click.option("--base", default="efficientnet-g0", show_default=True,
              help="Baseline: a variant name or a genotype JSON from `astromorph search`.")
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), required=True)
@click.option("--id-column", default="OBJID", show_default=True)
@click.option("--classes", help="Comma-separated class list (default: labels in train split).")
@click.option("--epochs", type=click.IntRange(1), default=3, show_default=True,
              help="Training epochs per candidate.")
@click.option("--max-candidates", type=click.IntRange(1), default=6, show_default=True)
@click.option("--budget", "budget_minutes", type=click.FloatRange(0, min_open=True),
              help="Start no new candidate after this many minutes.")
@click.option("--phis", type=click.IntRange(1), default=3, show_default=True,
              help="Write G1..G<phis>.")
@click.option("--tolerance", type=float, default=0.1, show_default=True,
              help="Accept abs(alpha*beta^2*gamma^2 - 2) <= this.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--limit", type=click.IntRange(1), help="Use at most N images per split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Skip candidates already in OUT_DIR/scale.json.")
def scale(labels: Path, image_dir: str, base: str, out_dir: Path, id_column: str,
          classes: str | None, epochs: int, max_candidates: int,
          budget_minutes: float | None, phis: int, tolerance: float, lr: float,
          batch_size: int, limit: int | None, seed: int, resume: bool) -> None:
    """Grid-search compound-scaling alpha, beta, gamma at phi=1, then write G1..Gn."""
    from .models.arch import get_arch
    from .search.scale import scale_search

    r = scale_search(get_arch(base), labels, image_dir, out_dir, id_column=id_column,
                     class_names=[c.strip() for c in classes.split(",")] if classes else None,
                     epochs=epochs, max_candidates=max_candidates,
                     budget_minutes=budget_minutes, phis=phis, tolerance=tolerance,
                     resume=resume, lr=lr, batch_size=batch_size, limit=limit, seed=seed,
                     schedule="cosine")
    click.echo("alpha  beta  gamma  a*b^2*g^2  input  MACs(M)  val acc")
    for c in sorted(r["candidates"].values(), key=lambda c: -c["val_accuracy"]):
        click.echo(f"{c['alpha']:.2f}  {c['beta']:.2f}  {c['gamma']:.2f}   "
                   f"{c['flops_factor']:.3f}      {c['resolution']:>3}  "
                   f"{c['macs'] / 1e6:7.2f}  {c['val_accuracy']:.4f}")
    b, p = r["best"], r["paper"]
    click.echo(f"chosen alpha {b['alpha']:.2f}, beta {b['beta']:.2f}, gamma {b['gamma']:.2f} "
               f"(paper: {p['alpha']}, {p['beta']}, {p['gamma']}); wrote "
               + ", ".join(str(f) for f in r["files"]))


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

    out = select_table1(read_catalog(solutions, "csv"), seed=seed)
    write_catalog(out, output, "csv", overwrite=overwrite)
    counts = ", ".join(f"{k} {v}" for k, v in out.meta["counts"].items())
    click.echo(f"wrote {output}: {len(out)} galaxies ({counts}); "
               f"{out.meta['ambiguous']} ambiguous left out", err=True)


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--arch", "archs", default="efficientnet-g0,efficientnet-g1,efficientnet-g2,"
              "efficientnet-g3,efficientnet-b0,mobilenet-v2", show_default=True,
              help="Comma-separated architectures; NAME@SIZE trains at another input size.")
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), required=True,
              help="Model files, JSON reports and confusion PNGs (reused on a rerun).")
@click.option("--md", type=click.Path(path_type=Path), help="Write the Markdown table here.")
@click.option("--id-column", default="OBJID", show_default=True)
@click.option("--classes", help="Comma-separated class list (default: labels in train split).")
@click.option("--epochs", type=click.IntRange(1), default=12, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--schedule", type=click.Choice(["constant", "cosine"]), default="cosine",
              show_default=True)
@click.option("--class-weighting", type=click.Choice(["none", "sqrt", "balanced"]),
              default="sqrt", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Comma-separated seeds: one training each; the table gives mean ± std.")
@click.option("--threads", type=click.IntRange(1), help="torch threads per training.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True)
@click.option("--device", default="cpu", show_default=True)
def compare(labels: Path, image_dir: str, archs: str, out_dir: Path, md: Path | None,
            id_column: str, classes: str | None, epochs: int, batch_size: int, lr: float,
            schedule: str, class_weighting: str, seeds: str, threads: int | None,
            label_smoothing: float, device: str) -> None:
    """Train ARCHS with one recipe and several seeds on LABELS; tabulate val and test.

    Every model file is kept in OUT_DIR (paths printed), so any row can be re-evaluated."""
    from .catalog_io import atomic_write_text
    from .training.compare import compare as compare_api
    from .training.compare import markdown_table

    reports = compare_api(
        labels, image_dir, [a.strip() for a in archs.split(",") if a.strip()], out_dir,
        id_column=id_column,
        classes=[c.strip() for c in classes.split(",")] if classes else None,
        epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
        class_weighting=class_weighting, seeds=_int_list(seeds, "--seeds"), threads=threads,
        label_smoothing=label_smoothing, device=device)
    for r in reports:
        for run in r["runs"]:
            click.echo(f"model file: {run['model']} (seed {run['seed']})", err=True)
    table = markdown_table(reports)
    click.echo(table)
    if md:
        atomic_write_text(md, table)


@cli.command()
@click.argument("labels", type=click.Path(exists=True, path_type=Path))
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--model", help="Registered model name or model file (default: default).")
@click.option("--id-column", default="OBJID", show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--backend", type=click.Choice(["onnx", "torch"]), default="onnx",
              show_default=True)
@click.option("--png", type=click.Path(path_type=Path), help="Write the confusion matrix here.")
@click.option("--json", "json_out", type=click.Path(path_type=Path),
              help="Write the full report as JSON.")
@click.option("--no-timing", is_flag=True, help="Skip the CPU latency measurement.")
@click.option("--fast-decode", is_flag=True, help="As for classify.")
@click.option("--tta", is_flag=True, help="As for classify: mean over 8 rotations/flips.")
def evaluate(labels: Path, image_dir: str, model: str | None, id_column: str, split: str,
             backend: str, png: Path | None, json_out: Path | None, no_timing: bool,
             fast_decode: bool, tta: bool) -> None:
    """Score a model on one split of LABELS through the classify pipeline."""
    from .training.evaluate import evaluate as evaluate_api

    r = evaluate_api(model, labels, image_dir, id_column, split, backend, png=png,
                     timing=not no_timing, fast_decode=fast_decode, tta=tta)
    click.echo(f"{r['model']}{' +TTA' if tta else ''} on {split}: n={r['n']} accuracy "
               f"{r['accuracy']:.4f} macro-F1 {r['f1_macro']:.4f}  weighted "
               f"P {r['precision_weighted']:.4f} R {r['recall_weighted']:.4f} "
               f"F1 {r['f1_weighted']:.4f}  ECE {r['ece']:.4f}")
    for name, m in r["per_class"].items():
        click.echo(f"  {name:<12} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} "
                   f"n={m['support']}")
    if "params" in r:
        click.echo(f"  params {r['params']}, MACs {r['macs']}, input {r['input_size']} px")
    if "latency_ms" in r:
        click.echo(f"  CPU latency {r['latency_ms']:.2f} ms/image (batch 1), "
                   f"{r['images_per_s']:.0f} images/s (batch 256, model only)")
    if json_out:
        json_out.write_text(json.dumps(r, indent=2))


@cli.command()
@click.argument("catalog", type=click.Path(exists=True, path_type=Path))
@click.option("--png", type=click.Path(path_type=Path), required=True, help="Image to write.")
@click.option("--image-dir", type=click.Path(path_type=Path), help="Folder of cutout images.")
@click.option("--id-column", default="GalaxyID", show_default=True)
@click.option("--path-column")
@click.option("--source", default="galaxyzoo", show_default=True)
@click.option("-n", "--number", type=click.IntRange(1, 400), default=36, show_default=True)
@click.option("--sort", type=click.Choice(["confidence", "-confidence", "row"]),
              default="confidence", show_default=True,
              help="-confidence shows the least confident first (where mistakes hide).")
@click.option("--label", help="Only rows with this predicted class.")
@click.option("--prefix", default="morph_", show_default=True)
def gallery(catalog: Path, png: Path, image_dir: Path | None, id_column: str,
            path_column: str | None, source: str, number: int, sort: str, label: str | None,
            prefix: str) -> None:
    """Draw classified cutouts of CATALOG (a classify output) with label and probability."""
    from .catalog_io import read_catalog
    from .gallery import draw_gallery

    draw_gallery(read_catalog(catalog), png, source=source, n=number, sort=sort, label=label,
                 prefix=prefix, image_dir=image_dir, id_column=id_column,
                 path_column=path_column)
    click.echo(f"wrote {png}", err=True)


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} takes comma-separated integers, not {text!r}") from None


def main() -> None:
    """Console entry point: user errors are one line on stderr and exit status 1."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
