"""The ``astromorph`` command: thin wrappers over the Python API."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from .errors import (
    EXIT_INTERRUPTED,
    EXIT_NOTHING_CLASSIFIED,
    EXIT_PIPE_CLOSED,
    ExitStatus,
    UserError,
    first_line,
    refuse_repeats,
    torch_out_of_memory,
)
from .pipes import PipeSafeStream

MAX_ROW_WARNINGS = 10


def figure_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """An image path whose suffix matplotlib can write: it would append ``.png`` to a name
    without one (the file would not be where the user looks) and raise on ``.txt``."""
    if value is None:
        return None
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    if value.suffix.lower().lstrip(".") not in kinds:
        raise click.BadParameter(f"{value}: cannot tell the image format from the suffix; use "
                                 f".png, .pdf or .svg (or one of {', '.join(sorted(kinds))})",
                                 ctx, param)
    return value


class Finite(click.FloatRange):
    """A number option that also refuses ``nan`` and ``inf``, which pass click's range checks
    (every comparison with nan is false) and would reach torch as a learning rate."""

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv

    def _describe_range(self) -> str:  # click's help would print "x<=None" with no bounds
        if self.min is None and self.max is None:
            return "finite"
        return super()._describe_range()


class _RowWarnings(logging.Handler):
    """Print the first few flagged rows, count the rest (a million-row run stays readable)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.count <= MAX_ROW_WARNINGS:
            click.echo(f"warning: {record.getMessage()}", err=True)


class _Warnings(logging.Handler):
    """``warning: ...`` for the library's warnings outside :func:`row_warnings` (plugin
    loading, say), where logging's last resort would print the bare message."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if not any(isinstance(h, _RowWarnings) for h in logging.getLogger("astro_morph").handlers):
            click.echo(f"warning: {record.getMessage()}", err=True)


def check_output_dirs(*paths: Path | None) -> None:
    """Refuse, before any work, an output whose folder does not exist."""
    from .fileio import require_output_dir

    for path in paths:
        if path is not None:
            require_output_dir(path)


@contextlib.contextmanager
def row_warnings(rest: str = "flagged rows") -> Iterator[_RowWarnings]:
    """Print the library's warnings (rows left out or flagged) as ``warning: ...`` lines
    while a command runs; after the first few, one ``... N more <rest>`` line at the end."""
    handler = _RowWarnings()
    logging.getLogger("astro_morph").addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger("astro_morph").removeHandler(handler)
        if handler.count > MAX_ROW_WARNINGS:
            click.echo(f"warning: ... {handler.count - MAX_ROW_WARNINGS} more {rest}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="astro_morph")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Galaxy morphology columns for astronomy catalogs."""
    ctx.obj = {"debug": debug}


def default_output(path: Path) -> Path:
    """``cat.fits`` -> ``cat_morph.fits`` beside the input. A compressed text or VOTable
    input gives its format uncompressed (``cat.csv.gz`` -> ``cat_morph.csv``; only FITS is
    written compressed), an IPAC or TSV one, which is read but not written, ECSV."""
    from .catalog_io import READ_ONLY_FORMATS, catalog_suffix, without_compression

    name = path.name
    suffix = catalog_suffix(path)
    if suffix:
        return path.with_name(name[: -len(suffix)] + "_morph" + name[-len(suffix):])
    plain = without_compression(name)
    stem, ext = os.path.splitext(plain)
    if ext.lower() in READ_ONLY_FORMATS:
        return path.with_name(stem + "_morph.ecsv")
    if catalog_suffix(plain):
        return path.with_name(stem + "_morph" + ext)
    if path.suffix:
        return path.with_name(path.stem + "_morph" + path.suffix)
    return path.with_name(name + "_morph")


@cli.command()
@click.argument("catalog", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output catalog (default: <input>_morph.<ext>). Format from its suffix.")
@click.option("--source", default="galaxyzoo", show_default=True, help="Cutout source.")
@click.option("--source-option", "source_option", multiple=True, metavar="KEY=VALUE",
              help="An option of the source's factory (repeatable); `astromorph plugins` "
              "lists each plugin's options. The flags below are shortcuts for common ones.")
@click.option("--image-dir", type=click.Path(path_type=Path), help="Folder of cutout images.")
@click.option("--id-column",
              help="Column naming the image (default: the source's own, GalaxyID for "
              "galaxyzoo: <id>.jpg / <id>.jpeg).")
@click.option("--path-column", help="Column with image paths relative to --image-dir.")
@click.option("--image", "images", multiple=True, type=click.Path(path_type=Path),
              help="FITS mosaic, one per band (1-3), reddest first, on one pixel grid "
              "(--source fits).")
@click.option("--ra-column",
              help="RA column (default RA; case-insensitive; degrees, angle units or "
              "sexagesimal; for a SkyCoord column 'coord', coord.ra, its ICRS RA).")
@click.option("--dec-column", help="Dec column (default DEC; coord.dec for a SkyCoord).")
@click.option("--size-column", help="Galaxy radius column (petroR90-like; arcsec, or the "
              "column's angle unit); cutouts then span Galaxy Zoo's 10.2 radii. Rows without "
              "a positive radius get --size-arcsec and flag 2048.")
@click.option("--size-arcsec", type=Finite(0, min_open=True),
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
@click.option("--timeout", type=Finite(0, min_open=True),
              help="Network sources: seconds to wait for a response (default 30).")
@click.option("--model", "models", multiple=True,
              help="Registered model name or model file (.amz); repeated, an ensemble: the "
              "members' mean probabilities (default: the default model).")
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
@click.option("--centring-option", "centring_option", multiple=True, metavar="KEY=VALUE",
              help="An option of the centring step's factory (repeatable), e.g. nsigma=3.")
@click.option("--crop-fraction", type=Finite(0, 1, min_open=True),
              help="Crop side as a fraction of the image (default: the one the model was "
              "trained on, the paper's 200/424 unless train --crop-fraction set another).")
@click.option("--prefix", default="morph_", show_default=True, help="Added columns' prefix.")
@click.option("--format", "in_format", help="Input format when the suffix does not tell.")
@click.option("--output-format", help="Output format when the suffix does not tell.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--in-place", is_flag=True,
              help="Write the columns into CATALOG itself (atomically: the file is replaced "
              "only once the run is complete). Refused where the rewrite would drop part of "
              "the file (FITS extensions or image data, VOTable resources).")
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
def classify(catalog: Path, output: Path | None, source: str, source_option: tuple[str, ...],
             image_dir: Path | None,
             id_column: str, path_column: str | None, images: tuple[Path, ...],
             ra_column: str, dec_column: str, size_column: str | None,
             size_arcsec: float | None, pixels: int | None, cache_dir: Path | None,
             offline: bool, retries: int | None, timeout: float | None,
             models: tuple[str, ...], backend: str,
             device: str, batch_size: int, chunk_size: int, centring: str,
             centring_option: tuple[str, ...], crop_fraction: float | None, prefix: str,
             in_format: str | None,
             output_format: str | None, overwrite: bool, in_place: bool,
             workers: int | None,
             progress: bool | None, resume: bool, fast_decode: bool, tta: bool,
             dask_address: str | None,
             partition_rows: int | None) -> None:
    """Classify every row of CATALOG and write it with morphology columns."""
    import numpy as np

    from .catalog_io import (
        check_writable,
        guess_format,
        in_place_header,
        is_hats_catalog,
        read_catalog,
        write_catalog,
    )
    from .columns import output_column_names
    from .fileio import replaceable_mode
    from .journal import OutputLock, remove_stale_temps

    if in_place:
        if output is not None and output.resolve() != catalog.resolve():
            raise UserError("--in-place writes CATALOG itself: leave out -o")
        if is_hats_catalog(catalog):
            raise UserError("--in-place is for catalog files; a HATS catalog is written as a "
                            "new folder (-o)")
        output, overwrite = catalog, True
    output = output or default_output(catalog)
    journal = output.with_name(output.name + ".partial")
    if output.resolve() == catalog.resolve() and not in_place:
        raise UserError(f"output {output} is the input catalog, which astromorph modifies "
                        f"only with --in-place; choose another -o")
    # Only what the user set reaches the plugins, so each plugin's own defaults apply.
    shortcuts = dict(image_dir=image_dir, id_column=id_column, path_column=path_column,
                     image=list(images) or None, ra_column=ra_column, dec_column=dec_column,
                     size_column=size_column, size_arcsec=size_arcsec,
                     offline=offline or None, pixels=pixels, cache_dir=cache_dir,
                     retries=retries, timeout=timeout)
    source_options, centring_options = plugin_options(
        source, shortcuts, source_option, centring,
        {"crop_fraction": crop_fraction} if crop_fraction else {}, centring_option)
    options = dict(source=source, centring=centring, centring_options=centring_options,
                   prefix=prefix, workers=workers, fast_decode=fast_decode, tta=tta,
                   **source_options)
    if is_hats_catalog(catalog):
        _classify_hats(catalog, output, models, backend, device, batch_size, chunk_size,
                       progress, overwrite, resume, dask_address, options)
        return
    guess_format(output, output_format, "--output-format")  # fail before the run, not after
    check_output_dirs(output)
    if not os.access(output.parent, os.W_OK):
        raise UserError(f"cannot write to output directory {output.parent}")
    if output.exists() and not overwrite:
        raise UserError(f"output {output} exists; pass --overwrite to replace it")
    try:
        replaceable_mode(output)  # a read-only output fails now, not after the run
    except PermissionError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
    primary_header = in_place_header(catalog, output_format or in_format) if in_place \
        else None
    table = read_catalog(catalog, in_format)
    if len(table) == 0:
        raise UserError(f"catalog {catalog} has no rows")
    model, classes = _loaded_model(models, backend, device, batch_size, dask_address)
    # Every added column's name, now that the model's classes are known (a long --prefix).
    check_writable(table, output, output_format, tuple(output_column_names(classes, prefix)))
    with row_warnings():
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
            except MemoryError as exc:  # the same sizes would fail the same way
                raise UserError(f"out of memory ({exc or 'no detail'}); rerun with a lower "
                                f"--batch-size or --chunk-size, and --overwrite (a run resumes "
                                f"only under the sizes it started with)") from None
            except KeyboardInterrupt:
                kept = (f"; the finished chunks are kept in {journal}: rerun the same command "
                        f"with --resume to continue" if journal.is_dir()
                        and any(journal.glob("chunk-*")) else "")
                raise ExitStatus(f"Interrupted{kept}", EXIT_INTERRUPTED) from None
            try:
                write_catalog(out, output, output_format, overwrite=overwrite,
                              primary_header=primary_header)
            except UserError as exc:
                if journal.is_dir():
                    raise UserError(f"{exc}; the classified rows are kept in {journal}: fix the "
                                    f"cause and rerun the same command with --resume") from None
                raise
            shutil.rmtree(journal, ignore_errors=True)
        finally:
            lock.release()
    flags = out[f"{prefix}flags"]
    n_flagged = int((flags != 0).sum())
    click.echo(f"wrote {output}: {len(out)} rows, {len(out) - n_flagged} classified cleanly, "
               f"{n_flagged} flagged", err=True)
    n_labelled = int((~np.ma.getmaskarray(out[f"{prefix}label"])).sum())
    if n_labelled == 0:
        raise ExitStatus(f"no row was classified (all {len(out)} flagged; see {prefix}flags); "
                         f"the output is written, the exit status says so",
                         EXIT_NOTHING_CLASSIFIED)


def _classify_hats(catalog: Path, output: Path, models: tuple[str, ...], backend: str,
                   device: str, batch_size: int | None, chunk_size: int,
                   progress: bool | None, overwrite: bool, resume: bool,
                   dask_address: str | None, options: dict) -> None:
    """A HATS catalog folder in, a HATS catalog folder out, through LSDB (lazy partitions,
    on --dask's cluster when given)."""
    import contextlib

    from .catalog_io import catalog_suffix
    from .scaleout import classify_hats, dask_client

    if len(models) > 1:
        raise UserError("a HATS catalog takes one --model (each partition loads it by path)")
    suffix = catalog_suffix(output)
    if suffix:
        raise UserError(f"-o {output}: a HATS catalog is written as a HATS catalog, a folder; "
                        f"name one without a catalog file suffix (e.g. -o "
                        f"{output.name[:-len(suffix)]})")
    if dask_address:
        _check_local_device(dask_address, backend, device)
    with dask_client(dask_address) if dask_address else contextlib.nullcontext(), \
            row_warnings():
        rows, clean = classify_hats(catalog, output, model=models[0] if models else None,
                                    backend=backend, device=device, batch_size=batch_size,
                                    chunk_size=chunk_size, overwrite=overwrite,
                                    resume=resume, progress=progress, **options)
    click.echo(f"wrote {output} (HATS catalog): {rows} rows, {clean} classified cleanly, "
               f"{rows - clean} flagged", err=True)


def plugin_options(source: str, source_shortcuts: dict, source_pairs: tuple[str, ...],
                   centring: str, centring_shortcuts: dict,
                   centring_pairs: tuple[str, ...]) -> tuple[dict, dict]:
    """The options the user set for the source and the centring step: shortcut flags plus
    ``KEY=VALUE`` pairs, typed and checked against each factory (one-line errors)."""
    from .options import check_options, parse_option_pairs
    from .plugins import lookup

    step_factory = lookup("centring", centring).factory
    src = source_plugin_options(source, source_shortcuts, source_pairs)
    step = dict(centring_shortcuts)
    step.update(parse_option_pairs(centring_pairs, step_factory, f"centring {centring!r}",
                                   "--centring-option"))
    check_options(step_factory, step, f"centring {centring!r}")
    return src, step


def source_plugin_options(source: str, shortcuts: dict, pairs: tuple[str, ...]) -> dict:
    """The options the user set for the source (classify, gallery): shortcut flags that are
    set, plus ``KEY=VALUE`` pairs, typed and checked against its factory (one-line errors)."""
    from .options import check_options, parse_option_pairs
    from .plugins import lookup

    factory = lookup("source", source).factory
    options = {k: v for k, v in shortcuts.items() if v is not None}
    options.update(parse_option_pairs(pairs, factory, f"source {source!r}", "--source-option"))
    check_options(factory, options, f"source {source!r}")
    return options


def _check_local_device(dask_address: str, backend: str, device: str) -> None:
    """``--dask local[:N]`` workers run on this machine: a torch device it lacks is refused
    here, before they start (each would fail its partitions; a remote cluster's workers
    may have the GPU this machine lacks)."""
    from .scaleout import is_local

    if backend == "torch" and is_local(dask_address):
        from .inference.torch_backend import resolve_device

        resolve_device(device)


def _loaded_model(models: tuple[str, ...], backend: str, device: str,
                  batch_size: int | None, dask_address: str | None) -> tuple[object, list[str]]:
    """The run's model and its classes: loaded here for a single-process run (an ensemble
    for several --model); for Dask the name or path each worker loads (loaded once here
    only to ask its classes)."""
    from .inference.load import load_model

    if dask_address:
        if len(models) > 1:
            raise UserError("--dask takes one --model (each worker loads it by path); an "
                            "ensemble runs in a single process")
        _check_local_device(dask_address, backend, device)
        ref = models[0] if models else None
        return ref, list(load_model(ref).class_names)
    if len(models) > 1:
        from .inference.ensemble import EnsembleClassifier

        clf = EnsembleClassifier([load_model(m, backend, device, batch_size) for m in models])
    else:
        clf = load_model(models[0] if models else None, backend, device, batch_size)
    return clf, list(clf.class_names)


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
    from .scaleout import classify_dask, dask_client

    with dask_client(dask_address) as client:
        return classify_dask(table, client, model=model, backend=backend, device=device,
                             batch_size=batch_size, chunk_size=chunk_size,
                             partition_rows=partition_rows, progress=progress, **options)


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
            for name, options in entry.get(f"{key}_options", {}).items():
                shown = "any" if options is None else ", ".join(options) or "none"
                click.echo(f"    {name} options: {shown}")
        click.echo(f"  hooks: {', '.join(entry['hooks'])}")


@cli.command()
@click.option("--num-classes", type=click.IntRange(1), default=5, show_default=True)
def models(num_classes: int) -> None:
    """List registered models, and the architecture family next to the paper's figures."""
    from .models.arch import PAPER_FIGURES, VARIANTS
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


@cli.command("export-onnx")
@click.argument("model")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="A .amz model file (weights + ONNX) or a bare .onnx file.")
@click.option("--overwrite", is_flag=True)
def export_onnx_cmd(model: str, output: Path, overwrite: bool) -> None:
    """Add an ONNX graph to MODEL (a model file or registered name, e.g. default), written to
    OUTPUT, for the ONNX Runtime backend or other ONNX tools."""
    from .fileio import atomic_write_bytes
    from .inference.deploy import export_onnx, onnx_with_metadata
    from .inference.load import model_file
    from .models.model_file import read_bundle, write_bundle

    check_output_dirs(output)  # as every other command: a mistyped folder is not created
    bundle = read_bundle(model_file(model))
    bundle.onnx = export_onnx(bundle)
    if output.suffix.lower() == ".onnx":
        if output.exists() and not overwrite:
            raise UserError(f"output {output} exists; pass --overwrite to replace it")
        atomic_write_bytes(output, onnx_with_metadata(bundle))
        click.echo(f"wrote {output}", err=True)
        return
    sha = write_bundle(bundle, output, overwrite=overwrite)
    click.echo(f"wrote {output} (sha256 {sha})", err=True)


@cli.command()
@click.argument("catalog", type=click.Path(exists=True, path_type=Path))
@click.option("--png", type=click.Path(path_type=Path), required=True, callback=figure_path,
              help="Image to write (.png, .pdf, .svg).")
@click.option("--image-dir", type=click.Path(path_type=Path), help="Folder of cutout images.")
@click.option("--id-column", help="As for classify (default: the source's own).")
@click.option("--path-column")
@click.option("--source", default="galaxyzoo", show_default=True)
@click.option("--image", "images", multiple=True, type=click.Path(path_type=Path),
              help="As for classify: FITS mosaic bands, with --source fits.")
@click.option("--source-option", "source_option", multiple=True, metavar="KEY=VALUE",
              help="As for classify: an option of the source's factory (repeatable), e.g. "
              "ra_column=ra.")
@click.option("-n", "--number", type=click.IntRange(1, 400), default=36, show_default=True)
@click.option("--sort", type=click.Choice(["confidence", "-confidence", "row"]),
              default="confidence", show_default=True,
              help="-confidence shows the least confident first (where mistakes hide).")
@click.option("--label", help="Only rows with this predicted class.")
@click.option("--truth-column", help="Column of known classes (e.g. volunteers' labels), "
              "shown under each prediction.")
@click.option("--only-wrong", is_flag=True,
              help="With --truth-column: only rows where the prediction differs from it.")
@click.option("--where", "where", multiple=True, metavar="COLUMN=VALUE",
              help="Only rows whose COLUMN holds VALUE, e.g. split=val (repeatable).")
@click.option("--prefix", default="morph_", show_default=True)
def gallery(catalog: Path, png: Path, image_dir: Path | None, id_column: str,
            path_column: str | None, source: str, images: tuple[Path, ...],
            source_option: tuple[str, ...], number: int, sort: str, label: str | None,
            truth_column: str | None, only_wrong: bool, where: tuple[str, ...],
            prefix: str) -> None:
    """Draw classified cutouts of CATALOG (a classify output) with label and probability.

    The cutouts come from the source CATALOG was classified with, given the same way
    (``--image-dir`` for Galaxy Zoo folders, ``--source fits --image ...`` for mosaics).
    """
    from .catalog_io import read_catalog
    from .gallery import draw_gallery

    check_output_dirs(png)
    options = source_plugin_options(
        source, dict(image_dir=image_dir, id_column=id_column, path_column=path_column,
                     image=list(images) or None), source_option)
    with row_warnings():
        _, matching = draw_gallery(
            read_catalog(catalog), png, source=source, n=number, sort=sort, label=label,
            prefix=prefix, truth_column=truth_column, only_wrong=only_wrong,
            where=_key_values(where, "--where"), **options)
    which = (f"that disagree with {truth_column!r}" if only_wrong else "classified"
             + (f" as {label!r}" if label else ""))
    click.echo(f"wrote {png}: {min(number, matching)} of the {matching} rows {which}", err=True)


def _key_values(items: tuple[str, ...], option: str) -> dict[str, str]:
    """``("split=val",)`` -> ``{"split": "val"}``; a one-line error for an item without ``=``."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"{option} takes COLUMN=VALUE, not {item!r}")
        out[key.strip()] = value.strip()
    return out


def class_list(text: str | None) -> list[str] | None:
    """``--classes a,b`` -> ``["a", "b"]`` (``None``: the labels' own classes)."""
    if not text:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if len(set(names)) != len(names):
        raise UserError(f"--classes repeats a class: {text}")
    return names


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} takes comma-separated integers, not {text!r}") from None
    refuse_repeats(values, option)  # one seed counted twice would shrink the reported spread
    return values


# The training commands register themselves on ``cli`` (after the helpers they import).
from . import cli_training  # noqa: E402,F401


def _out_of_memory(exc: BaseException) -> str | None:
    """What ran out of memory, for a MemoryError or torch's allocator RuntimeError (CPU
    "can't allocate memory", CUDA "out of memory"); ``None`` for any other error."""
    import re

    if isinstance(exc, MemoryError):
        return str(exc) or "no detail"
    if not torch_out_of_memory(exc):
        return None
    size = re.search(r"allocate (\d+) bytes", str(exc))
    return (f"torch could not allocate {int(size.group(1)) / 2**20:.0f} MiB" if size
            else first_line(exc)[:200])


def main() -> None:
    """Console entry point: user errors are one line on stderr and exit status 1."""
    debug = "--debug" in sys.argv[1:]
    logger = logging.getLogger("astro_morph")
    if not any(isinstance(h, _Warnings) for h in logger.handlers):  # main() may run again
        logger.addHandler(_Warnings())
    # A reader that leaves (| head) silences the messages, not the work (pipes.py).
    streams = []
    for name in ("stdout", "stderr"):
        if not isinstance(getattr(sys, name), PipeSafeStream):
            setattr(sys, name, PipeSafeStream(getattr(sys, name)))
        streams.append(getattr(sys, name))
    try:
        cli.main(standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise  # a success (e.g. --help) goes on to the closed-stream check below
    except click.exceptions.Abort:
        click.echo("Interrupted. (classify, train, search and compare continue from their "
                   "checkpoints when rerun the same way, with --resume for the first three)",
                   err=True)
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
    except (MemoryError, RuntimeError) as exc:  # a batch or chunk too large for the machine
        detail = _out_of_memory(exc)
        if debug or detail is None:
            raise
        click.echo(f"Error: out of memory ({detail}); lower --batch-size", err=True)
        sys.exit(1)
    except OSError as exc:  # a file the user named: missing folder, permissions, disk full
        if debug:
            raise
        what = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else exc
        click.echo(f"Error: {what}", err=True)
        sys.exit(1)
    if any(s.broken for s in streams):
        sys.exit(EXIT_PIPE_CLOSED)
