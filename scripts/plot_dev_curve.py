"""Plot a dev learning curve from `frs eval` output folders (docs/RESULTS.md's figure).

    .venv/bin/python scripts/plot_dev_curve.py --out docs/img/dev_curve_v4.png \
        --point 40=RUNS/eval/dev100-ckpt-40 --point 80=RUNS/eval/dev100-ckpt-80 ... \
        --line teacher=RUNS/eval/dev100-teacher --line shipped=RUNS/eval/dev100-shipped

Each ``--point STEP=DIR`` is one checkpoint's evaluation (x = optimizer step, y = overall gIoU,
with semantic / spatial beside it); each ``--line NAME=DIR`` a horizontal reference.
Chains seen = step x chains per step (``--chains-per-step``, 8 for configs/sft_student_v4.yaml).
``--loss-from CHECKPOINT/trainer_state.json`` adds the teacher-forced dev loss the run logged
(every ``eval_steps``) on a second axis: it is cheap and dense where the gIoU points are few.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _summary(folder: str) -> dict:
    return json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", action="append", default=[], help="STEP=EVAL_DIR")
    parser.add_argument("--line", action="append", default=[], help="NAME=EVAL_DIR")
    parser.add_argument("--chains-per-step", type=int, default=8)
    parser.add_argument("--loss-from", help="a trainer_state.json whose log has eval_loss entries")
    parser.add_argument("--title", default="student v4 on dev100 (gIoU, %)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted((int(s), _summary(d)) for s, d in (p.split("=", 1) for p in args.point))
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    steps = [s for s, _ in points]
    ax.plot(steps, [100 * d["overall"]["gIoU"] for _, d in points], "o-", label="overall")
    for category, style in (("semantic", "s--"), ("spatial", "^--")):
        ys = [100 * d["groups"]["category"].get(category, {}).get("gIoU", float("nan")) for _, d in points]
        ax.plot(steps, ys, style, alpha=0.6, label=category)
    for name, folder in (p.split("=", 1) for p in args.line):
        value = 100 * _summary(folder)["overall"]["gIoU"]
        ax.axhline(value, linestyle=":", color="gray")
        ax.text(steps[0] if steps else 0, value + 1, f"{name} {value:.1f}", fontsize=8, color="gray")
    if args.loss_from:
        history = json.loads(Path(args.loss_from).read_text(encoding="utf-8"))["log_history"]
        losses = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
        twin_ax = ax.twinx()
        twin_ax.plot([s for s, _ in losses], [v for _, v in losses], "x:", color="tab:red", label="dev loss")
        twin_ax.set_ylabel("teacher-forced dev loss", color="tab:red")
        twin_ax.set_ylim(0, max(v for _, v in losses) * 1.1)
        twin_ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel(f"optimizer step ({args.chains_per_step} chains each)")
    ax.set_ylabel("gIoU (%)")
    ax.set_title(args.title, fontsize=10)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
