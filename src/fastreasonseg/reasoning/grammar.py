"""GBNF grammars that constrain a turn of a rollout to the protocol (llama.cpp constrained decoding).

A 135M base model told the format in a prompt still drifts: it loops inside ``<reason>``,
invents tool names, writes ids that are not in the scene. With a grammar the sampler can
only emit text the protocol parser accepts:

- ``<reason>`` at most ``reason_chars`` characters without ``<``, then ``</reason>\\n``;
- then a plan or the answer; a plan is a JSON list of calls whose tool names and argument
  keys/types come from the tool registry (:data:`fastreasonseg.twin.tools.TOOLS`), object
  ids are the twin's ids (lists at most ``max_ids`` long) or one of the names the twin's
  labels go by (the tool resolves it, :mod:`fastreasonseg.twin.tools.registry`), enumerated
  string arguments are their choices (on videos also the video-only ones, ``extreme`` by ``speed``);
- after the last allowed tool round only ``<answer>`` may follow;
- the answer is a non-empty JSON list of the twin's ids.

One grammar per turn: the engine passes the one for where the rollout is (start, after
``<results>``, answer only). Tool-argument values are still checked by the tools at run
time (e.g. a frame number out of range); the grammar only removes the impossible.

Departure from the paper: the paper's students are not constrained; this is an inference
option (``RolloutConfig.constrained``) for backends that support grammars, on by default
for llama.cpp. Training and evaluation of format rewards must run unconstrained.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Literal

State = Literal["start", "after_results", "answer_only", "start_answer_only"]

_JSON_RULES = r"""
ws ::= " "?
num ::= "-"? [0-9]{1,6} ("." [0-9]{1,4})?
int ::= [0-9]{1,6}
str ::= "\"" [^"\\<\n]{0,60} "\""
"""


def _literal(text: str) -> str:
    """A GBNF string literal for ``text``."""
    return json.dumps(text)


def _id_rule(ids: Iterable[int]) -> str:
    alternatives = sorted({str(int(i)) for i in ids}, key=lambda s: (len(s), s))
    return "oid ::= " + (" | ".join(_literal(a) for a in alternatives) if alternatives else '"0"')


def _name_rule(names: Sequence[str] | None) -> str:
    """``name``: a JSON string naming objects; the twin's names when given, any short string otherwise."""
    if names is None:
        return "name ::= str"
    alternatives = sorted({json.dumps(str(n)) for n in names if str(n).strip()}, key=lambda s: (len(s), s))
    return "name ::= " + (" | ".join(_literal(a) for a in alternatives) if alternatives else '"\"\""')


def _value_rule(arg_type: str, choices: tuple[str, ...]) -> str:
    if choices:
        return "(" + " | ".join(_literal(json.dumps(c)) for c in choices) + ")"
    return {"id": "(oid | name)", "ids": "(oids | name)", "int": "int", "num": "num", "str": "str"}.get(arg_type, "str")


def _tool_rules(video: bool, exclude: tuple[str, ...] = ()) -> list[str]:
    from fastreasonseg.twin.tools import TOOLS, tool_names

    rules = []
    names = tool_names(video, exclude)
    for index, name in enumerate(names):
        spec = TOOLS[name]
        args = {a: s for a, s in spec.args.items() if video or spec.video_only or a != "frame"}
        parts: list[str] = []
        if args and not any(s.required for s in args.values()):
            # Only optional arguments (present_at): one of them, never a dangling comma.
            pieces = [f"{_literal(json.dumps(a) + ': ')} {_value_rule(s.type, s.allowed(video))}" for a, s in args.items()]
            parts.append("(" + " | ".join(pieces) + ")?")
        first = True
        for arg, arg_spec in args.items() if not parts else ():
            key = _literal(("" if first else ", ") + json.dumps(arg) + ": ")
            piece = f"{key} {_value_rule(arg_spec.type, arg_spec.allowed(video))}"
            if arg_spec.required:
                parts.append(piece)
                first = False
            else:
                parts.append(f"({piece})?")
        head = _literal('{"tool": ' + json.dumps(name) + ', "args": {')
        rules.append(f"t{index} ::= {head} {' '.join(parts)} " + _literal("}}"))
    rules.append("call ::= " + " | ".join(f"t{i}" for i in range(len(names))))
    return rules


def rollout_grammar(ids: Sequence[int], *, video: bool, state: State = "start", reason_chars: int = 300,
                    max_calls: int = 4, max_ids: int = 12, exclude_tools: tuple[str, ...] = (),
                    names: Sequence[str] | None = None) -> str:
    """The GBNF grammar for the next turn of a rollout.

    ``state``: ``"start"`` (nothing generated yet), ``"after_results"`` (a ``<results>``
    block was just inserted), ``"answer_only"`` (no tool rounds left) or ``"start_answer_only"``
    (nothing generated yet and tools switched off: reason, then answer); ``exclude_tools``
    are tools the prompt does not offer (prompt v1 predates the knowledge tool). Id lists hold at
    most ``min(len(ids), max_ids)`` entries (a looping model cannot repeat ids forever).
    ``names``: the object names an ``id``/``ids`` argument may give instead of ids (the twin's
    :func:`~fastreasonseg.twin.vocab.label_names`), so a name the twin cannot resolve is never
    written; ``None`` allows any short string (the tool then says when it names nothing).
    """
    if reason_chars < 1 or max_calls < 1:
        raise ValueError("reason_chars and max_calls must be >= 1")
    calls = '"[" call' + ' ("," ws call)?' * (max_calls - 1) + ' "]"'
    next_block = {"start": "(plan | answer)", "after_results": "(plan | answer)", "answer_only": "answer",
                  "start_answer_only": "answer"}[state]
    if state.startswith("start"):
        root = 'root ::= "<reason>" reason "</reason>\\n" ' + next_block
    else:
        root = "root ::= " + next_block
    rules = [
        root,
        f"reason ::= [^<]{{1,{reason_chars}}}",
        f'plan ::= "<plan>" {calls} "</plan>"',
        'answer ::= "<answer>" oids "</answer>"',
        f'oids ::= "[" oid ("," ws oid){{0,{max(0, min(len(ids), max_ids) - 1)}}} "]"',
        _id_rule(ids),
        _name_rule(names),
        *_tool_rules(video, exclude_tools),
    ]
    return "\n".join(rules) + _JSON_RULES
