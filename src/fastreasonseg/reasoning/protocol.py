"""The rollout protocol: build, parse and check ``<reason>/<plan>/<results>/<answer>`` chains.

Grammar (``docs/DESIGN.md``, after the paper)::

    <reason>natural-language reasoning</reason>
    <plan>[{"tool": "depth_order", "args": {"ids": [3, 8]}}]</plan>
    <results>RESULTS_JSON</results>
    <answer>[3]</answer>

one ``<reason>``, then zero or more ``<plan>``/``<results>`` pairs, then one ``<answer>``
holding a JSON list of int object ids; tags are separated by single newlines.
``RESULTS_JSON`` is :func:`format_results` of ``run_plan(twin, calls)``.

One parser serves the teacher's chains, the RL reward functions, evaluation and the
runtime, so :func:`parse_rollout` is total (it never raises, whatever the text) and linear
in the text length (one regex scan over the tags). Every problem becomes a
:class:`Failure` with a stable machine-readable ``code`` (see :data:`FAILURE_CODES`);
``format_ok`` is true when no failure of the *format* kind occurred (all required tags
present, each once where required, in order, closed, nothing outside them), which is the
paper's R_format condition. Content failures (bad plan JSON, unknown tools, ids not in
the twin, ...) do not affect ``format_ok``.

For SFT, :func:`results_spans` returns the character spans of the runtime-inserted
``<results>`` blocks, where the loss must not apply.

Departures from the paper: the paper gives the tags but no grammar; the single-newline
separators, the failure codes and the strictness choices (an answer outside ``<answer>``
tags is not salvaged; duplicate ids in an answer are kept once and reported) are ours.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

TAGS: tuple[str, ...] = ("reason", "plan", "results", "answer")
STOP_STRINGS: tuple[str, ...] = ("</plan>", "</answer>")

# code -> (kind, description). kind "format" failures make format_ok False.
FAILURE_CODES: dict[str, tuple[str, str]] = {
    "missing_reason": ("format", "no <reason>...</reason> block"),
    "missing_answer": ("format", "no <answer>...</answer> block"),
    "duplicate_tag": ("format", "<reason> or <answer> appears more than once"),
    "disordered_tags": ("format", "tags not in the order reason, (plan, results)*, answer"),
    "missing_results": ("format", "a <plan> is not followed by its <results>"),
    "unclosed_tag": ("format", "an opening tag without its closing tag"),
    "stray_close_tag": ("format", "a closing tag without an opening tag"),
    "nested_tag": ("format", "a protocol tag inside another protocol block"),
    "text_outside_tags": ("format", "non-whitespace text between or before the blocks"),
    "trailing_text": ("format", "non-whitespace text after </answer>"),
    "invalid_plan_json": ("content", "a plan is not valid JSON"),
    "invalid_call": ("content", "a plan entry is not {\"tool\": str, \"args\": object}"),
    "unknown_tool": ("content", "a plan names a tool that does not exist"),
    "tool_error": ("content", "a tool call failed (wrong args, ids not in the twin, ...)"),
    "invalid_results_json": ("content", "a <results> block is not valid JSON"),
    "results_mismatch": ("content", "<results> differ from running the plan on the twin"),
    "invalid_answer": ("content", "the answer is not a JSON list of integer ids"),
    "empty_answer": ("content", "the answer is an empty list"),
    "duplicate_ids": ("content", "the answer lists an id more than once"),
    "unknown_ids": ("content", "the answer names ids that are not in the twin"),
    "answer_outside_tags": ("content", "an id list appears outside <answer> tags"),
    # Set by the runtime (engine), never by the parser:
    "too_many_tool_rounds": ("runtime", "the model kept planning past the tool-round limit"),
    "token_budget_exhausted": ("runtime", "generation hit the token budget before </answer>"),
    "ended_without_answer": ("runtime", "the model ended its turn before </answer>"),
    "backend_error": ("runtime", "the LLM backend failed (endpoint down, context overflow, ...)"),
}

_TAG_RE = re.compile(r"<(/?)(reason|plan|results|answer)>")
_ID_LIST_RE = re.compile(r"\[\s*-?\d+(?:\s*,\s*-?\d+)*\s*\]")
_MAX_MESSAGE = 240


@dataclass(frozen=True)
class Failure:
    """One problem found in a rollout: a stable ``code`` from :data:`FAILURE_CODES` and a human message."""

    code: str
    message: str

    @property
    def kind(self) -> str:
        return FAILURE_CODES.get(self.code, ("content", ""))[0]

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Block:
    """One closed protocol block: ``tag``, its inner text and the character span of the whole block."""

    tag: str
    content: str
    start: int
    end: int


@dataclass
class ParsedRollout:
    """Everything :func:`parse_rollout` read from a rollout.

    ``plans[i]`` is the list of calls of the i-th ``<plan>`` as written (None where its
    JSON was unusable); ``results[i]`` the parsed JSON of the i-th ``<results>`` (None where invalid).
    ``answer_ids`` is None when there is no parseable ``<answer>``; otherwise the ids in
    order of first mention, duplicates removed.
    """

    reason: str | None = None
    plans: list[list | None] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    answer_ids: list[int] | None = None
    failures: list[Failure] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def format_ok(self) -> bool:
        """True when all required tags are present, in order, closed, with nothing outside them (R_format)."""
        return not any(f.kind == "format" for f in self.failures)

    @property
    def ok(self) -> bool:
        """True when there is no failure at all and an answer was read."""
        return not self.failures and self.answer_ids is not None

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.failures]

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "plans": self.plans, "results": self.results, "answer_ids": self.answer_ids,
                "format_ok": self.format_ok, "failures": [f.to_dict() for f in self.failures]}


# --------------------------------------------------------------------------- building


def format_results(results: Any) -> str:
    """The exact JSON text the runtime puts between ``<results>`` tags (compact, UTF-8 kept)."""
    return json.dumps(results, separators=(",", ":"), ensure_ascii=False)


def results_block(results: Any) -> str:
    """What the runtime appends right after a generated ``</plan>``: newline, results block, newline."""
    return f"\n<results>{format_results(results)}</results>\n"


def format_plan(calls: list[dict]) -> str:
    return json.dumps(calls, separators=(", ", ": "), ensure_ascii=False)


def build_rollout(reason: str, rounds: list[tuple[list[dict], Any]], answer_ids: list[int]) -> str:
    """Write a rollout in the canonical layout from its parts (used by teachers and tests).

    ``rounds`` holds ``(calls, results)`` pairs, where ``results`` is what
    ``run_plan(twin, calls)`` returned. The layout is byte-identical to what the runtime
    produces when the model writes the same blocks.
    """
    parts = [f"<reason>{reason}</reason>\n"]
    for calls, results in rounds:
        parts.append(f"<plan>{format_plan(calls)}</plan>")
        parts.append(results_block(results))
    parts.append(f"<answer>{json.dumps([int(i) for i in answer_ids])}</answer>")
    return "".join(parts)


# --------------------------------------------------------------------------- spans for SFT


def last_plan(text: str) -> str | None:
    """The inside of the ``<plan>`` block that ``text`` ends with (generation paused at ``</plan>``).

    None when that ``</plan>`` has no opening tag. Shared by the inference engine and the
    GRPO rollout so both hand the tools exactly the same plan text.
    """
    opening = text.rfind("<plan>")
    if opening < 0:
        return None
    inside = text[opening + len("<plan>"):-len("</plan>")]
    return None if "</plan>" in inside else inside


def results_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of runtime-inserted text, where SFT loss must not apply.

    Each span covers what :func:`results_block` appends after a ``</plan>``: from the end
    of ``</plan>`` (including the whitespace before ``<results>``) through ``</results>``
    and one following newline. A ``<results>`` block not preceded by a plan is still
    returned (the model must never learn to write results itself).
    """
    spans: list[tuple[int, int]] = []
    last_plan_close = -1
    open_results = -1
    for match in _TAG_RE.finditer(text):
        closing, tag = match.group(1) == "/", match.group(2)
        if tag == "plan" and closing:
            last_plan_close = match.end()
        elif tag == "results" and not closing:
            between = text[last_plan_close:match.start()] if last_plan_close >= 0 else None
            open_results = last_plan_close if between is not None and not between.strip() else match.start()
        elif tag == "results" and closing and open_results >= 0:
            end = match.end() + (1 if text.startswith("\n", match.end()) else 0)
            spans.append((open_results, end))
            open_results = -1
            last_plan_close = -1
    return spans


# --------------------------------------------------------------------------- parsing


def _clip(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _known_tools() -> frozenset[str]:
    """Names of the DT tools (image and video)."""
    from fastreasonseg.twin.tools import TOOLS  # imported on use: importing the protocol stays light

    return frozenset(TOOLS)


def parse_plan(text: str) -> tuple[list | None, list[Failure]]:
    """Parse the inside of a ``<plan>`` block; returns ``(calls, failures)``.

    ``calls`` is the JSON list exactly as written (a single call object is wrapped in a
    list, and reported), so that the runtime hands the same list to ``run_plan``, which
    answers malformed entries with structured errors the model can read; ``calls`` is None
    only when the JSON is unusable. Malformed entries and unknown tools are reported here.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = getattr(exc, "msg", type(exc).__name__)
        return None, [Failure("invalid_plan_json", _clip(f"plan is not valid JSON ({msg}): {text}"))]
    failures: list[Failure] = []
    if isinstance(data, dict):
        data = [data]
        failures.append(Failure("invalid_call", "plan must be a JSON list of calls; got a single object"))
    elif not isinstance(data, list):
        return None, [Failure("invalid_plan_json", _clip(f"plan must be a JSON list of calls, got {type(data).__name__}"))]
    known = _known_tools()
    for index, call in enumerate(data):
        if not isinstance(call, dict) or not isinstance(call.get("tool"), str):
            failures.append(Failure("invalid_call", _clip(f"plan[{index}] must be {{\"tool\": str, \"args\": {{...}}}}, got {call!r}")))
        elif not isinstance(call.get("args") or {}, dict):  # null args mean "no arguments", as in run_tool
            failures.append(Failure("invalid_call", _clip(f"plan[{index}].args must be an object, got {call.get('args')!r}")))
        elif call["tool"] not in known:
            failures.append(Failure("unknown_tool", _clip(f"plan[{index}]: unknown tool {call['tool']!r}; known: {sorted(known)}")))
    return data, failures


def parse_answer(text: str) -> tuple[list[int] | None, list[Failure]]:
    """Parse the inside of an ``<answer>`` block: a JSON list of int ids (order kept, duplicates dropped)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None, [Failure("invalid_answer", _clip(f"answer is not valid JSON: {text}"))]
    if isinstance(data, int) and not isinstance(data, bool):
        data = [data]
        failures = [Failure("invalid_answer", f"answer must be a JSON list of ids, got a bare number {text.strip()}")]
    else:
        failures = []
    if not isinstance(data, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
        return None, [Failure("invalid_answer", _clip(f"answer must be a JSON list of integer ids, got {text}"))]
    if not data:
        return [], [Failure("empty_answer", "answer is an empty list")]
    ids = list(dict.fromkeys(data))
    if len(ids) != len(data):
        failures.append(Failure("duplicate_ids", f"answer repeats ids: {data}"))
    return ids, failures


def _scan_blocks(text: str, failures: list[Failure]) -> tuple[list[Block], list[tuple[int, int]]]:
    """Closed blocks in order, plus the spans of text outside any block; records tag-structure failures."""
    blocks: list[Block] = []
    outside: list[tuple[int, int]] = []
    open_tag: str | None = None
    open_at = 0
    content_start = 0
    cursor = 0  # end of the last closed block (or of a skipped stray tag)
    for match in _TAG_RE.finditer(text):
        closing, tag = match.group(1) == "/", match.group(2)
        if open_tag is None:
            if closing:
                failures.append(Failure("stray_close_tag", f"</{tag}> at character {match.start()} closes nothing"))
                outside.append((cursor, match.start()))
                cursor = match.end()
                continue
            outside.append((cursor, match.start()))
            open_tag, open_at, content_start = tag, match.start(), match.end()
        elif closing and tag == open_tag:
            blocks.append(Block(tag, text[content_start:match.start()], open_at, match.end()))
            open_tag = None
            cursor = match.end()
        elif closing:
            failures.append(Failure("stray_close_tag", f"</{tag}> at character {match.start()} inside <{open_tag}>"))
        else:
            failures.append(Failure("nested_tag", f"<{tag}> at character {match.start()} inside an open <{open_tag}>"))
    if open_tag is not None:
        failures.append(Failure("unclosed_tag", f"<{open_tag}> opened at character {open_at} is never closed"))
        cursor = len(text)
    outside.append((cursor, len(text)))
    return blocks, outside


def _check_order(blocks: list[Block], failures: list[Failure]) -> None:
    """Check blocks against reason (plan results)* answer; report each kind of violation once."""
    tags = [b.tag for b in blocks]
    for tag in ("reason", "answer"):
        if tags.count(tag) > 1:
            failures.append(Failure("duplicate_tag", f"<{tag}> appears {tags.count(tag)} times"))
    if "reason" not in tags:
        failures.append(Failure("missing_reason", "no <reason>...</reason> block"))
    if "answer" not in tags:
        failures.append(Failure("missing_answer", "no <answer>...</answer> block"))
    problems: list[str] = []
    if tags and "reason" in tags and tags[0] != "reason":
        problems.append(f"first block is <{tags[0]}>, expected <reason>")
    if tags and "answer" in tags and tags[-1] != "answer":
        problems.append(f"<{tags[-1]}> after <answer>")
    missing_results = 0
    for i, tag in enumerate(tags):
        previous = tags[i - 1] if i else None
        if tag == "results" and previous != "plan":
            problems.append(f"<results> at block {i} does not follow a <plan>")
        if tag == "plan" and (i + 1 >= len(tags) or tags[i + 1] != "results"):
            missing_results += 1
        if tag == "plan" and "reason" in tags and tags.index("reason") > i:
            problems.append(f"<plan> at block {i} comes before <reason>")
    if problems:
        failures.append(Failure("disordered_tags", "; ".join(dict.fromkeys(problems))))
    if missing_results:
        failures.append(Failure("missing_results", f"{missing_results} <plan> block(s) not followed by <results>"))


def parse_rollout(text: Any, twin: DigitalTwin | None = None) -> ParsedRollout:
    """Parse a rollout; never raises.

    With ``twin``, plans are re-run on it (through the DT tools) to check the recorded
    ``<results>`` and tool errors, and answer ids are checked against the twin's track ids.
    """
    parsed = ParsedRollout()
    failures = parsed.failures
    if not isinstance(text, str):
        failures.append(Failure("missing_reason", f"rollout must be a string, got {type(text).__name__}"))
        failures.append(Failure("missing_answer", "no <answer>...</answer> block"))
        return parsed
    blocks, outside = _scan_blocks(text, failures)
    parsed.blocks = blocks
    _check_order(blocks, failures)

    answer_seen = False
    last_answer_end = -1
    for block in blocks:
        if block.tag == "reason" and parsed.reason is None:
            parsed.reason = block.content.strip()
        elif block.tag == "plan":
            calls, plan_failures = parse_plan(block.content)
            parsed.plans.append(calls)
            failures.extend(plan_failures)
        elif block.tag == "results":
            try:
                parsed.results.append(json.loads(block.content))
            except (json.JSONDecodeError, RecursionError):
                parsed.results.append(None)
                failures.append(Failure("invalid_results_json", _clip(f"results are not valid JSON: {block.content}")))
        elif block.tag == "answer" and not answer_seen:
            answer_seen = True
            last_answer_end = block.end
            parsed.answer_ids, answer_failures = parse_answer(block.content)
            failures.extend(answer_failures)

    for start, end in outside:
        stray = text[start:end]
        if not stray.strip():
            continue
        if answer_seen and start >= last_answer_end:
            failures.append(Failure("trailing_text", _clip(f"text after </answer>: {stray.strip()}")))
        else:
            failures.append(Failure("text_outside_tags", _clip(f"text outside the blocks at character {start}: {stray.strip()}")))
        if not answer_seen and _ID_LIST_RE.search(stray):
            failures.append(Failure("answer_outside_tags",
                                    _clip(f"an id list {_ID_LIST_RE.search(stray).group(0)} is outside <answer> tags")))

    if twin is not None:
        _check_against_twin(parsed, twin)
    return parsed


def _check_against_twin(parsed: ParsedRollout, twin: DigitalTwin) -> None:
    """Re-run each plan on the twin; compare with the recorded results; check answer ids exist."""
    from fastreasonseg.twin.tools import run_plan

    for index, calls in enumerate(parsed.plans):
        if calls is None:
            continue
        expected = run_plan(twin, calls)
        for item in expected:
            if isinstance(item, dict) and not item.get("ok", True):
                parsed.failures.append(Failure("tool_error", _clip(f"plan {index}: {item.get('tool')}: {item.get('error')}")))
        if index < len(parsed.results) and parsed.results[index] is not None:
            # Compare as parsed JSON: tuples vs lists and key order do not matter.
            if parsed.results[index] != json.loads(format_results(expected)):
                parsed.failures.append(Failure("results_mismatch", _clip(
                    f"results {index} differ from the tools' output: recorded "
                    f"{format_results(parsed.results[index])} vs {format_results(expected)}")))
    if parsed.answer_ids:
        known = set(twin.track_ids)
        missing = [i for i in parsed.answer_ids if i not in known]
        if missing:
            parsed.failures.append(Failure("unknown_ids", f"answer ids {missing} are not in the twin (ids: {sorted(known)[:30]})"))
