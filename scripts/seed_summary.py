"""Mean and spread over seeds of runs trained with ``astromorph train`` and scored with
``astromorph evaluate --json``: the table ``astromorph compare`` prints, for rows of
docs/results.md whose models were not trained by compare (label smoothing, class weights,
fine-tuning, data size), or whose seeds were trained by separate compare runs (a seed's
``<arch>-s<seed>.json`` holds its val and test reports).

    python3 scripts/seed_summary.py --label balanced \\
        runs/g3-balanced-s{0,1,2}-val.json runs/g3-balanced-s{0,1,2}-test.json
    python3 scripts/seed_summary.py docs/figures/results/lr-g3/lr3e-3/efficientnet-g3-s0.json \\
        runs/lr3e-3/efficientnet-g3-s1.json runs/lr3e-3/efficientnet-g3-s2.json

Each model needs one report of ``val`` and one of ``test`` (the split is read from the
report and the pair matched by the model file's sha256); seeds are counted in the order the
val reports are given. Prints compare's table row, its per-class test table, and per split
the accuracy, macro-F1 and ECE of every seed with their mean ± sd.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from astro_morph.errors import UserError
from astro_morph.training.compare import markdown_table, mean_sd, per_class_table, summarise

#: What summarise reads from each report.
REPORT_KEYS = ("split", "sha256", "n", "per_class", "accuracy", "f1_macro", "f1_weighted",
               "precision_weighted", "recall_weighted", "ece")


def read_report(path: Path) -> list[dict[str, Any]]:
    """The evaluate reports in one file: an ``astromorph evaluate --json`` report, or the
    val and test reports of one compare seed (``<arch>-s<seed>.json``); a one-line exit
    naming the file when it is unreadable or neither."""
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: cannot read it as a JSON report ({err})") from None
    is_run = isinstance(report, dict) and {"seed", "val", "test"} <= set(report)
    reports = [report["val"], report["test"]] if is_run else [report]
    for r in reports:
        missing = [k for k in REPORT_KEYS if not isinstance(r, dict) or k not in r]
        if missing:
            raise UserError(f"{path}: not an evaluate --json report nor a compare seed's "
                            f"report (no {', '.join(missing)})")
    return reports


def pair_reports(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs as compare builds them (``seed``, ``model``, ``val``, ``test``), from evaluate
    reports of the val and test splits of the same model files."""
    by_split: dict[str, dict[str, dict[str, Any]]] = {"val": {}, "test": {}}
    classes = {tuple(sorted(r["per_class"])) for r in reports}
    if len(classes) > 1:
        raise UserError("the reports score different classes: "
                        + " vs ".join(", ".join(c) for c in sorted(classes)))
    for r in reports:
        split = r.get("split")
        if split not in by_split:
            raise UserError(f"a report of split {split!r}: give val and test reports only")
        if r["sha256"] in by_split[split]:
            raise UserError(f"two {split} reports of the model {r['sha256'][:12]}")
        by_split[split][r["sha256"]] = r
    if set(by_split["val"]) != set(by_split["test"]):
        raise UserError("every model needs one val and one test report "
                         f"({len(by_split['val'])} val, {len(by_split['test'])} test, "
                         "not of the same model files)")
    return [{"seed": i, "model": v.get("model"), "val": v, "test": by_split["test"][sha]}
            for i, (sha, v) in enumerate(by_split["val"].items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="+",
                        help="evaluate --json reports, or compare's <arch>-s<seed>.json")
    parser.add_argument("--label", default="model", help="the row's name in the table")
    args = parser.parse_args()
    runs = pair_reports([r for p in args.reports for r in read_report(p)])
    summary = {**summarise(runs), "arch": args.label}
    print(markdown_table([summary]))
    print(per_class_table(summary))
    for split in ("val", "test"):  # the figures the table leaves out (val ECE)
        print(f"{split}: " + ", ".join(_seeds(k, summary[split][k])
                                       for k in ("accuracy", "f1_macro", "ece")))


def _seeds(name: str, stat: dict[str, Any]) -> str:
    values = " / ".join(f"{v:.4f}" for v in stat["values"])
    return f"{name} {mean_sd(stat, 4)} ({values})"


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
