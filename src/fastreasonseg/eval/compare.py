"""Side-by-side tables of several ``frs eval`` runs (the rows of docs/RESULTS.md).

    frs eval-compare "base=runs/eval_base" "sft=runs/eval_sft" --out docs/results_tables.md

Reads each run's ``samples.jsonl`` (not its summary) so that any cross grouping can be
computed, e.g. category x level, which the per-run summary does not hold. gIoU is the mean
per-sample IoU (for videos the mean over annotated frames, i.e. J), cIoU the pooled
intersection over pooled union, both in percent; the same definitions as ``frs eval``.

With two or more runs a third table gives each run's gIoU difference to the first run with a
paired bootstrap 95% interval over the samples both runs evaluated (resampling samples, the
same resample for both runs; 5,000 resamples, seed 0). On a 100-item test set differences
of a few points are within noise; the interval says which are not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.errors import FrsError

CATEGORIES = ("semantic", "spatial", "temporal")
LEVELS = ("L1", "L2", "L3", "L4")


def load_run(folder: str | Path) -> list[dict[str, Any]]:
    """The records of one eval folder; a clear error when it is not one."""
    from fastreasonseg.eval.runner import SAMPLES_FILE, read_records

    path = Path(folder) / SAMPLES_FILE
    if not path.is_file():
        raise FrsError(f"{folder}: no {SAMPLES_FILE} (is this an `frs eval --out` folder?)")
    records = read_records(path)
    if not records:
        raise FrsError(f"{path}: no evaluated samples")
    return records


def _giou(records: list[dict[str, Any]]) -> float | None:
    return 100 * float(np.mean([r["iou"] for r in records])) if records else None


def _ciou(records: list[dict[str, Any]]) -> float | None:
    union = sum(r["union"] for r in records)
    return 100 * sum(r["intersection"] for r in records) / union if union else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _where(records: list[dict[str, Any]], **keys: str) -> list[dict[str, Any]]:
    return [r for r in records if all(r["keys"].get(k) == v for k, v in keys.items())]


def row_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers of one run."""
    reasoning = [r["seconds"]["reasoning"] for r in records]
    return {
        "n": len(records), "gIoU": _giou(records), "cIoU": _ciou(records),
        **{c: _giou(_where(records, category=c)) for c in CATEGORIES},
        "in_dist": _giou(_where(records, holdout="none")),
        "held_phrasing": _giou(_where(records, holdout="phrasing")),
        "held_category": _giou(_where(records, holdout="category")),
        "parse_fail": 100 * float(np.mean([bool(r["parse_failed"]) for r in records])),
        "format_ok": 100 * float(np.mean([bool(r["format_ok"]) for r in records])),
        "tool_use": 100 * float(np.mean(["<plan>" in (r.get("text") or "") for r in records])),
        "tokens": float(np.mean([r["new_tokens"] for r in records])),
        "seconds": float(np.median(reasoning)),
    }


def compare_markdown(runs: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """Markdown tables: headline metrics, gIoU by category x level, and (two or more runs) each
    run's gIoU difference to the first with a paired bootstrap interval."""
    ids = [{r["id"] for r in records} for _, records in runs]
    note = "" if all(s == ids[0] for s in ids) else \
        "\n**Note: the runs did not evaluate the same samples; compare with care.**\n"
    head = ("| model | n | gIoU | cIoU | semantic | spatial | temporal | in-dist. | held-out phrasing | "
            "held-out category | parse fail % | format ok % | plans % | tokens/answer | s/query (median) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, records in runs:
        m = row_metrics(records)
        lines.append(f"| {name} | {m['n']} | {_fmt(m['gIoU'])} | {_fmt(m['cIoU'])} | "
                     + " | ".join(_fmt(m[c]) for c in CATEGORIES)
                     + f" | {_fmt(m['in_dist'])} | {_fmt(m['held_phrasing'])} | {_fmt(m['held_category'])} | "
                     f"{m['parse_fail']:.1f} | {m['format_ok']:.1f} | {m['tool_use']:.0f} | {m['tokens']:.0f} | "
                     f"{m['seconds']:.2f} |")
    cells = [(c, lev) for c in CATEGORIES for lev in LEVELS]
    sizes = [len(_where(runs[0][1], category=c, level=lev)) for c, lev in cells]
    keep = [cell for cell, size in zip(cells, sizes, strict=True) if size]
    head2 = "| model | " + " | ".join(f"{c[:4]} {lev} (n={len(_where(runs[0][1], category=c, level=lev))})"
                                      for c, lev in keep) + " |"
    lines += ["", "gIoU (%) by category x level:", "", head2, "|" + "---|" * (len(keep) + 1)]
    for name, records in runs:
        lines.append(f"| {name} | " + " | ".join(_fmt(_giou(_where(records, category=c, level=lev)))
                                                 for c, lev in keep) + " |")
    if len(runs) > 1:
        lines += _bootstrap_lines(runs)
    return note + "\n".join(lines) + "\n"


def paired_bootstrap(first: list[dict[str, Any]], other: list[dict[str, Any]], *, resamples: int = 5000,
                     seed: int = 0) -> dict[str, float] | None:
    """gIoU of ``other`` minus gIoU of ``first`` (percent points) on their shared sample ids, with the
    2.5 / 97.5 percentiles of the paired bootstrap; None when they share no sample."""
    a = {r["id"]: float(r["iou"]) for r in first}
    b = {r["id"]: float(r["iou"]) for r in other}
    shared = sorted(a.keys() & b.keys())
    if not shared:
        return None
    diff = 100 * (np.array([b[i] for i in shared]) - np.array([a[i] for i in shared]))
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"n": len(shared), "delta": float(diff.mean()), "low": float(low), "high": float(high)}


def _bootstrap_lines(runs: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    base_name, base = runs[0]
    lines = ["", f"gIoU difference to {base_name} (percent points; paired bootstrap 95% interval):", "",
             "| model | shared n | delta gIoU | 95% interval |", "|---|---|---|---|"]
    for name, records in runs[1:]:
        b = paired_bootstrap(base, records)
        lines.append(f"| {name} | 0 | - | - |" if b is None else
                     f"| {name} | {b['n']} | {b['delta']:+.1f} | [{b['low']:+.1f}, {b['high']:+.1f}] |")
    return lines


def parse_run_specs(specs: list[str]) -> list[tuple[str, Path]]:
    """``NAME=FOLDER`` (or a bare folder, named by its last path part)."""
    out = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            name, folder = Path(spec).name, spec
        if not name or not folder:
            raise FrsError(f"{spec!r}: expected NAME=FOLDER")
        out.append((name, Path(folder)))
    return out
