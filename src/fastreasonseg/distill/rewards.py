"""The GRPO rewards of the paper as plain TRL-protocol reward functions.

``reward(completions, **dataset_columns) -> list[float | None]``, one value per completion
(TRL ``trl/rewards`` convention); parametrised rewards are small picklable classes.

- :func:`format_reward` (R_format): +0.5 when every required tag is present, once, in
  order, closed and nothing stands outside them (:attr:`ParsedRollout.format_ok`), else -0.5.
- :class:`AccuracyReward` (R_accuracy): 1 if the answer's mask IoU with the ground truth
  is above 0.5 else 0; ``continuous=True`` gives the IoU itself. The IoU is
  :func:`fastreasonseg.eval.scoring.score_answer`, the scorer evaluation uses.
- :class:`ReasoningReward` (R_reasoning): a judge's score in [0, 1] comparing the chain
  with the item's teacher chain. The paper's 0.5 weight is applied by the trainer
  (``reward_weights``) so that logs show the raw judge score.

Completions may be strings or chat messages (``[{"role": "assistant", "content": ...}]``).
Dataset columns needed: ``twin`` or ``twin_json``, ``answer_ids`` (+ ``gt_twin_json`` when
the model sees a noisy twin) for accuracy; ``teacher`` and ``query`` for reasoning. A row
that cannot be scored (its twin does not validate, ...) gets ``None``: TRL leaves it out of
that reward instead of crashing the step, and the class counts it in ``skipped``.
"""

from __future__ import annotations

from typing import Any

from fastreasonseg.data.items import ItemError
from fastreasonseg.reasoning.protocol import parse_rollout

FORMAT_OK, FORMAT_BAD = 0.5, -0.5


def completion_text(completion: Any) -> str:
    """The assistant text of a completion: a string, or the contents of the assistant messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content")
        return content if isinstance(content, str) else ""
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(m) for m in completion
                       if not isinstance(m, dict) or m.get("role", "assistant") == "assistant")
    return ""


def _rows(columns: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Per-completion dicts of the dataset columns (TRL passes one list per column)."""
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    for name, values in columns.items():
        if isinstance(values, list) and len(values) == count:
            for row, value in zip(rows, values, strict=True):
                row[name] = value
    return rows


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """R_format: +0.5 if all tags are present and in order (protocol ``format_ok``), else -0.5."""
    return [FORMAT_OK if parse_rollout(completion_text(c)).format_ok else FORMAT_BAD for c in completions]


class AccuracyReward:
    """R_accuracy: ``1.0`` if the answer's mask IoU > ``threshold`` else ``0.0``; ``continuous`` gives the IoU.

    An answer that cannot be parsed predicts no mask (IoU 0, unless the target is empty).
    """

    def __init__(self, threshold: float = 0.5, continuous: bool = False):
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        self.threshold = float(threshold)
        self.continuous = bool(continuous)
        self.__name__ = "accuracy_iou" if continuous else "accuracy"
        self.skipped = 0

    def __call__(self, completions: list[Any], **columns: Any) -> list[float | None]:
        from fastreasonseg.eval.scoring import target_from_item

        rewards: list[float | None] = []
        for completion, row in zip(completions, _rows(columns, len(completions)), strict=True):
            try:
                target = target_from_item(row)
            except (ItemError, ValueError):
                self.skipped += 1
                rewards.append(None)
                continue
            score = target.score(parse_rollout(completion_text(completion)).answer_ids)
            rewards.append(score.iou if self.continuous else float(score.passes(self.threshold)))
        return rewards


class ReasoningReward:
    """R_reasoning: the judge's score in [0, 1] of the chain against the row's ``teacher`` chain.

    ``judge`` has ``score(student, teacher, query) -> float | None`` (and optionally a
    batched ``score_many``). ``None`` (judge failed, no teacher chain) stays ``None`` so TRL
    ignores it, or becomes 0.0 with ``on_failure="zero"``.
    """

    def __init__(self, judge: Any, on_failure: str = "none"):
        if on_failure not in ("none", "zero"):
            raise ValueError(f"on_failure must be 'none' or 'zero', got {on_failure!r}")
        self.judge = judge
        self.on_failure = on_failure
        self.__name__ = "reasoning"

    def __call__(self, completions: list[Any], **columns: Any) -> list[float | None]:
        rows = _rows(columns, len(completions))
        students = [completion_text(c) for c in completions]
        teachers = [row.get("teacher") or "" for row in rows]
        queries = [row.get("query") or "" for row in rows]
        if hasattr(self.judge, "score_many"):
            scores = self.judge.score_many(students, teachers, queries)
        else:
            scores = [self.judge.score(s, t, q) for s, t, q in zip(students, teachers, queries, strict=True)]
        if self.on_failure == "zero":
            return [0.0 if s is None else float(s) for s in scores]
        return [None if s is None else float(s) for s in scores]
