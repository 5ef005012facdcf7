"""The rollout engine: generate, pause at ``</plan>``, run the DT tools, insert ``<results>``, resume.

One rollout (paper; ``docs/DESIGN.md`` "Rollout protocol")::

    prompt = system (instructions + tool contracts) [+ few-shot] + user (compact twin + query)
    loop:  generate until </plan> or </answer>
           on </plan>: parse the plan, run_plan(twin, calls), append "\\n<results>JSON</results>\\n"
           on </answer>: done
    parse the whole text with the protocol parser (also checks ids against the twin)

Bounded by ``max_tool_rounds`` and token budgets (per turn and in total). Nothing the model
writes is executed as code: plans are JSON handed to the whitelisted pure tools of
:mod:`fastreasonseg.twin.tools`. Every problem (bad tags, bad JSON, unknown tool, budget
exhausted, backend down, ...) ends up as a :class:`~fastreasonseg.reasoning.protocol.Failure`
in the :class:`RolloutResult`; the engine does not raise on model output.

Several queries on one twin (:meth:`RolloutEngine.run_many`) share the prompt up to the
query text, so a backend with a prefix cache encodes the twin once. Backends that batch
(``supports_batching``) get all rollouts' turns in lockstep through ``complete_many``;
the others run the queries one after another, which keeps their single cached sequence
warm for the resume after ``</plan>``.

Departures from the paper: the paper fixes neither the budgets nor what happens on a
malformed plan; here a malformed plan gets an error entry in ``<results>`` so the model can
still answer, and the limits are configurable (:class:`RolloutConfig`). Under a grammar, a
plan that repeats an earlier one (a small model's loop: same calls, same results) leaves
only ``<answer>`` open, so the tokens of further identical rounds are not spent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, Message, ReasonerBackend
from fastreasonseg.reasoning.protocol import (
    STOP_STRINGS,
    Failure,
    ParsedRollout,
    last_plan,
    parse_plan,
    parse_rollout,
    results_block,
)

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin



DEFAULT_TWIN_TOKENS = 1200
DEFAULT_TURN_TOKENS = 256


@dataclass
class RolloutConfig:
    """Limits and decoding settings for one rollout.

    ``prompt``: the prompt style (:mod:`fastreasonseg.reasoning.prompt`): ``v1`` (base models)
    or ``v2`` (short prompt of distilled students). ``None`` (the default): the style the
    applied adapter records it was trained on, ``v1`` without an adapter.
    ``few_shot``: prepend worked examples (v1 only). ``None`` (the default) means the project's
    rule: examples only for a base model, i.e. when the backend has no distilled adapter applied
    (a student is trained without them); True/False force it (a base-model teacher, ablations).
    ``max_new_tokens_per_turn``: ``None`` means ``min(256, max_new_tokens)``.
    ``twin_max_tokens``: token budget for the compact twin text (the serializer drops
    detail to fit; measured with the backend's tokenizer when it has one).
    ``constrained``: on backends that support grammars (llama.cpp), decode under the
    protocol grammar of :mod:`fastreasonseg.reasoning.grammar` (reason at most
    ``reason_chars`` characters, registered tools only, the twin's ids only); ignored elsewhere.
    ``disabled_tools``: registered tools switched off for this run (ablations such as "without
    the knowledge tool"): left out of the prompt and the grammar, and a call to one gets an
    error result instead of running.
    :meth:`resolved` fills the ``None`` fields for a backend; the engine runs on the resolved config.
    """

    max_tool_rounds: int = 3
    max_new_tokens_per_turn: int | None = None
    max_new_tokens: int = 640
    temperature: float = 0.0
    seed: int | None = None
    few_shot: bool | None = None
    prompt: str | None = None
    twin_max_tokens: int | None = DEFAULT_TWIN_TOKENS
    constrained: bool = True
    reason_chars: int = 300
    disabled_tools: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from fastreasonseg.twin.tools import TOOLS

        self.disabled_tools = tuple(self.disabled_tools)
        unknown = [t for t in self.disabled_tools if t not in TOOLS]
        if unknown:
            raise ValueError(f"disabled_tools names unknown tools {unknown}; tools: {', '.join(TOOLS)}")
        if self.max_tool_rounds < 0:
            raise ValueError(f"max_tool_rounds must be >= 0, got {self.max_tool_rounds}")
        per_turn = self.max_new_tokens_per_turn
        if (per_turn is not None and per_turn < 1) or self.max_new_tokens < 1:
            raise ValueError("max_new_tokens_per_turn and max_new_tokens must be >= 1 "
                             f"(got {per_turn}, {self.max_new_tokens})")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.reason_chars < 1:
            raise ValueError(f"reason_chars must be >= 1, got {self.reason_chars}")
        if self.prompt is not None and self.prompt not in ("v1", "v2"):
            raise ValueError(f"prompt must be 'v1', 'v2' or None (the adapter's own), got {self.prompt!r}")
        if self.prompt == "v2" and self.few_shot:
            raise ValueError("prompt v2 has no worked examples; few_shot must be False or None")
        if self.twin_max_tokens is not None and self.twin_max_tokens < 32:
            raise ValueError(f"twin_max_tokens must be >= 32 or None, got {self.twin_max_tokens}")

    def resolved(self, backend: ReasonerBackend) -> RolloutConfig:
        """This config with the defaults that depend on the backend filled in (see the class docstring)."""
        from dataclasses import replace

        from fastreasonseg.reasoning.prompt import adapter_prompt_style

        prompt = self.prompt or adapter_prompt_style(backend.adapter)
        few_shot = self.few_shot if self.few_shot is not None else (backend.adapter is None and prompt == "v1")
        per_turn = self.max_new_tokens_per_turn or min(DEFAULT_TURN_TOKENS, self.max_new_tokens)
        return replace(self, prompt=prompt, few_shot=few_shot,
                       max_new_tokens_per_turn=min(per_turn, self.max_new_tokens))


@dataclass
class ToolRound:
    """One pause: the plan as written, what it parsed to, and the results inserted."""

    plan_text: str
    calls: list | None
    results: list

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan_text, "calls": self.calls, "results": self.results}


@dataclass
class RolloutResult:
    """The outcome of one query: the full assistant text, the answer and everything that went wrong."""

    query: str
    text: str
    answer_ids: list[int]
    parsed: ParsedRollout
    failures: list[Failure]
    rounds: list[ToolRound] = field(default_factory=list)
    stop_reason: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    new_tokens: int = 0
    generation_calls: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # e.g. the scene was reduced to fit the prompt
    # Seconds by stage summed over the backend calls (keys of Generation.timing) plus "tools_s".
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def format_ok(self) -> bool:
        return self.parsed.format_ok

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "answer_ids": self.answer_ids, "text": self.text,
                "format_ok": self.format_ok, "failures": [f.to_dict() for f in self.failures],
                "rounds": [r.to_dict() for r in self.rounds], "stop_reason": self.stop_reason,
                "tokens": {"prompt": self.prompt_tokens, "cached": self.cached_tokens, "new": self.new_tokens},
                "generation_calls": self.generation_calls, "seconds": round(self.seconds, 4), "notes": self.notes}


def error_results(message: str) -> list[dict[str, Any]]:
    """The results block content for a plan the tools could not even receive (same shape as a tool error)."""
    return [{"tool": None, "ok": False, "error": message}]


def execute_plan(twin: DigitalTwin, plan_text: str, disabled: tuple[str, ...] = ()) -> tuple[list | None, list]:
    """Parse a plan's JSON and run it on the twin; unusable JSON becomes an error entry, never an exception.

    Calls to ``disabled`` tools are not run: each gets an error result saying the tool is off.
    """
    from fastreasonseg.twin.tools import run_plan

    calls, failures = parse_plan(plan_text)
    if calls is None:
        return None, error_results(failures[0].message if failures else "plan is not a JSON list of calls")
    return calls, list(run_plan(twin, calls, disabled))


class _Rollout:
    """The state of one rollout between backend calls."""

    def __init__(self, query: str, messages: list[Message], config: RolloutConfig, grammar: Any = None):
        self.query = query
        self.grammar = grammar  # callable(state) -> GBNF text, or None when decoding is unconstrained
        self.messages = messages
        self.config = config
        self.text = ""
        self.rounds: list[ToolRound] = []
        self.failures: list[Failure] = []
        self.done = False
        self.stop_reason = ""
        self.prompt_tokens = self.cached_tokens = self.new_tokens = self.calls = 0
        self.seconds = 0.0
        self.timing: dict[str, float] = {}

    def request(self) -> GenerationRequest:
        remaining = self.config.max_new_tokens - self.new_tokens
        seed = None if self.config.seed is None else self.config.seed + self.calls
        extra = {}
        if self.grammar is not None:
            no_rounds_left = len(self.rounds) >= self.config.max_tool_rounds or self._repeated_plan()
            if not self.text:
                state = "start_answer_only" if no_rounds_left else "start"
            else:
                state = "answer_only" if no_rounds_left else "after_results"
            extra["grammar"] = self.grammar(state)
        return GenerationRequest(messages=self.messages, assistant_prefix=self.text, stop=STOP_STRINGS,
                                 max_new_tokens=min(self.config.max_new_tokens_per_turn, remaining),
                                 temperature=self.config.temperature, seed=seed, extra=extra)

    def _repeated_plan(self) -> bool:
        """Whether the last plan repeats an earlier one: its results are already in the text, so only the answer may follow."""
        if len(self.rounds) < 2 or self.rounds[-1].calls is None:
            return False
        return any(r.calls == self.rounds[-1].calls for r in self.rounds[:-1])

    def advance(self, generation: Generation, twin: DigitalTwin) -> None:
        self.calls += 1
        self.prompt_tokens += generation.prompt_tokens
        self.cached_tokens += generation.cached_tokens
        self.new_tokens += generation.new_tokens
        self.seconds += generation.seconds
        for key, value in generation.timing.items():
            self.timing[key] = self.timing.get(key, 0.0) + value
        self.stop_reason = generation.stop_reason
        if generation.stop_reason == "error":
            self._finish(Failure("backend_error", generation.error or "backend failed without a message"))
            return
        self.text += _cut_after_stop(generation.text)
        if self.text.endswith("</answer>"):
            self._finish()
        elif self.text.endswith("</plan>"):
            if len(self.rounds) >= self.config.max_tool_rounds:
                self._finish(Failure("too_many_tool_rounds",
                                     f"plan number {len(self.rounds) + 1} exceeds max_tool_rounds={self.config.max_tool_rounds}"))
                return
            plan_text = last_plan(self.text)
            started = time.perf_counter()
            if plan_text is None:
                calls, results = None, error_results("</plan> without a matching <plan>")
            else:
                calls, results = execute_plan(twin, plan_text, self.config.disabled_tools)
            self.timing["tools_s"] = self.timing.get("tools_s", 0.0) + time.perf_counter() - started
            self.rounds.append(ToolRound(plan_text=plan_text or "", calls=calls, results=results))
            self.text += results_block(results)
            if self.new_tokens >= self.config.max_new_tokens:
                self._finish(Failure("token_budget_exhausted", f"used all {self.config.max_new_tokens} new tokens "
                                                               "before </answer>"))
        elif generation.stop_reason == "length":
            self._finish(Failure("token_budget_exhausted", f"turn stopped at its token limit after {generation.new_tokens} "
                                                           "tokens without </plan> or </answer>"))
        else:
            self._finish(Failure("ended_without_answer", f"generation ended ({generation.stop_reason}) before </answer>"))

    def _finish(self, failure: Failure | None = None) -> None:
        if failure is not None:
            self.failures.append(failure)
        self.done = True

    def result(self, twin: DigitalTwin) -> RolloutResult:
        parsed = parse_rollout(self.text, twin)
        known = set(twin.track_ids)
        answer = [i for i in (parsed.answer_ids or []) if i in known]
        return RolloutResult(query=self.query, text=self.text, answer_ids=answer, parsed=parsed,
                             failures=[*parsed.failures, *self.failures], rounds=self.rounds,
                             stop_reason=self.stop_reason, prompt_tokens=self.prompt_tokens,
                             cached_tokens=self.cached_tokens, new_tokens=self.new_tokens,
                             generation_calls=self.calls, seconds=self.seconds, timing=dict(self.timing))


def _cut_after_stop(text: str) -> str:
    """Backends should stop at the stop string; trim anything after the first one, defensively."""
    cut = len(text)
    for stop in STOP_STRINGS:
        at = text.find(stop)
        if at >= 0:
            cut = min(cut, at + len(stop))
    return text[:cut]


class RolloutEngine:
    """Runs rollouts for queries on twins with one backend.

    ``prompt`` builds the chat messages; the default is
    :class:`fastreasonseg.reasoning.prompt.PromptBuilder` with the resolved ``config.few_shot``.
    Build engines with :func:`fastreasonseg.reasoning.factory.build_engine`, which also loads
    the backend from a spec; constructing one directly is for tests with scripted backends.
    """

    def __init__(self, backend: ReasonerBackend, config: RolloutConfig | None = None, prompt: Any | None = None):
        from fastreasonseg.reasoning.prompt import PromptBuilder

        self.backend = backend
        self.config = (config or RolloutConfig()).resolved(backend)
        self.prompt = prompt or PromptBuilder(few_shot=bool(self.config.few_shot), style=self.config.prompt or "v1",
                                              disabled_tools=self.config.disabled_tools)
        self._twin_text_cache: tuple[DigitalTwin, str] | None = None

    def twin_text(self, twin: DigitalTwin) -> str:
        """The compact twin text, within ``twin_max_tokens`` counted by the backend's tokenizer when it has one."""
        # Keyed by identity while holding the twin: an id() of a freed twin could be reused by a new one.
        if self._twin_text_cache is not None and self._twin_text_cache[0] is twin:
            return self._twin_text_cache[1]
        counter = self.backend.count_tokens if self.backend.count_tokens("id") is not None else None
        text = self.prompt.scene_text(twin, self.config.twin_max_tokens, counter)
        self._twin_text_cache = (twin, text)
        return text

    def prompt_twin(self, twin: DigitalTwin, queries: Sequence[str]) -> tuple[DigitalTwin, str | None]:
        """The twin the prompt shows: ``twin``, or its candidates when even its id list overflows the twin budget."""
        budget = self.config.twin_max_tokens
        if budget is None:
            return twin, None
        from fastreasonseg.reasoning.narrow import narrow_for_prompt
        from fastreasonseg.twin.serialize import estimate_tokens

        counter = self.backend.count_tokens if self.backend.count_tokens("id") is not None else estimate_tokens
        # Slack for the serializer's own rounding; far past it, only the id list can be what overflows.
        return narrow_for_prompt(twin, queries, lambda t: counter(self.twin_text(t)) <= int(budget * 1.1))

    def messages(self, twin: DigitalTwin, query: str) -> list[Message]:
        return self.prompt.messages(self.twin_text(twin), query, video=twin.is_video)

    def run(self, twin: DigitalTwin, query: str) -> RolloutResult:
        """One query on one twin."""
        return self.run_many(twin, [query])[0]

    def run_many(self, twin: DigitalTwin, queries: Sequence[str]) -> list[RolloutResult]:
        """Several queries on one twin, reusing the encoded twin prefix; results in query order.

        A twin whose id list alone overflows the twin budget is first narrowed to candidates
        (:mod:`fastreasonseg.reasoning.narrow`); each result's ``notes`` then says so.
        """
        started = time.perf_counter()
        twin, note = self.prompt_twin(twin, queries)
        results = self._run_many(twin, queries, started)
        if note:
            for result in results:
                result.notes.append(note)
        return results

    def _run_many(self, twin: DigitalTwin, queries: Sequence[str], started: float) -> list[RolloutResult]:
        grammar = None
        if self.config.constrained and self.backend.supports_grammar:
            from fastreasonseg.reasoning.grammar import rollout_grammar
            from fastreasonseg.twin.tools import track_label
            from fastreasonseg.twin.vocab import label_names

            ids, video, chars = twin.track_ids, twin.is_video, self.config.reason_chars
            names = sorted({n for i in ids for n in label_names(track_label(twin, i))})
            excluded = tuple(dict.fromkeys((*getattr(self.prompt, "excluded_tools", ()), *self.config.disabled_tools)))

            def grammar(state: str) -> str:
                return rollout_grammar(ids, video=video, state=state, reason_chars=chars, exclude_tools=excluded,
                                       names=names)

        rollouts = [_Rollout(q, self.messages(twin, q), self.config, grammar) for q in queries]
        if self.backend.supports_batching and len(rollouts) > 1:
            while active := [r for r in rollouts if not r.done]:
                generations = self.backend.complete_many([r.request() for r in active])
                for rollout, generation in zip(active, generations, strict=True):
                    rollout.advance(generation, twin)
            results = [r.result(twin) for r in rollouts]
            for result in results:  # lockstep: a query's latency is the batch's
                result.seconds = time.perf_counter() - started
            return results
        results = []
        for rollout in rollouts:
            started = time.perf_counter()
            while not rollout.done:
                rollout.advance(self.backend.complete(rollout.request()), twin)
            results.append(rollout.result(twin))
            results[-1].seconds = time.perf_counter() - started  # wall time incl. tools and parsing
        return results
