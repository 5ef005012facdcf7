"""``frs demo``: the offline main job, end to end on synthetic scenes with the embedded student.

Run::

    frs demo --out demo_out            # writes demo_out/report.md, overlays, result.json per query

What it does, with a fixed seed so two runs write the same scenes and queries:

1. generates one image scene and one video scene with the package's own scene generator
   (:mod:`fastreasonseg.data.scenes`) and, per reasoning category, a few queries whose
   answers come from executable programs (:mod:`fastreasonseg.data.queries`): semantic and
   spatial on the image, temporal on the video;
2. loads the reasoner (``default`` = the embedded SmolLM2-135M student, GGUF shipped in a
   wheel, plus the distilled adapter shipped in the package) through the Python API
   (:class:`fastreasonseg.api.ReasoningSegmenter`, the path ``frs segment`` and ``frs serve`` take)
   and asks every query of a scene with one ``ask_many``, so the twin prefix is encoded once per scene;
3. scores each answer with the project's one scorer (:func:`fastreasonseg.eval.scoring.score_answer`,
   mask IoU; correct = IoU > 0.5, the paper's accuracy threshold) and writes, per query,
   ``result.json`` (the ``frs segment`` contract), ``score.json`` (truth, IoU, the full rollout
   and the query program) plus two overlays (the answer and the ground truth, PNG for the image,
   GIF for the video), and for the whole run ``report.md`` / ``report.json`` with the
   queries, answers, ground truth, correctness, reasoning text and timing.

Departures from the paper: the paper's demo runs on real photos through perception; this one
uses the noise-free synthetic twins (the perception models are not shipped offline), so it
shows the reasoning stage alone. The time budget (under two minutes on a 2-core CPU, model
load included) is why there are few queries and the twin text is capped (``twin_max_tokens``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastreasonseg.reasoning.engine import DEFAULT_TWIN_TOKENS

if TYPE_CHECKING:
    from fastreasonseg.data.queries import Query
    from fastreasonseg.data.scenes import Scene
    from fastreasonseg.reasoning.backends.base import ReasonerBackend

DEMO_CATEGORIES: tuple[str, ...] = ("semantic", "spatial", "temporal")
CORRECT_IOU = 0.5  # the paper's R_accuracy threshold (IoU > 0.5)


@dataclass
class DemoConfig:
    """Everything that determines a demo run; saved as ``config.json`` in the output folder."""

    out: str = "demo_out"
    seed: int = 0
    per_category: int = 2
    reasoner: str = "default"
    adapter: str | None = None
    backend: str = "auto"
    threads: int | None = None
    twin_max_tokens: int = DEFAULT_TWIN_TOKENS
    max_new_tokens: int = 320
    width: int = 480
    height: int = 360
    num_frames: int = 6
    categories: tuple[str, ...] = DEMO_CATEGORIES

    def __post_init__(self) -> None:
        if not 1 <= self.per_category <= 10:
            raise ValueError(f"per_category must be 1..10 queries (the demo must stay short), got {self.per_category}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        bad = set(self.categories) - set(DEMO_CATEGORIES)
        if bad or not self.categories:
            raise ValueError(f"categories must be a non-empty subset of {list(DEMO_CATEGORIES)}, got {self.categories}")
        if self.twin_max_tokens < 64:
            raise ValueError(f"twin_max_tokens must be >= 64, got {self.twin_max_tokens}")
        if self.max_new_tokens < 8:
            raise ValueError(f"max_new_tokens must be >= 8, got {self.max_new_tokens}")
        if not 2 <= self.num_frames <= 32:
            raise ValueError(f"num_frames must be 2..32, got {self.num_frames}")
        self.categories = tuple(self.categories)


@dataclass
class DemoScene:
    """A generated scene and the demo queries asked about it."""

    name: str
    scene: Scene
    queries: list[Query]

    @property
    def scene_meta(self) -> dict[str, Any]:
        return {"type": self.scene.scene_type, "camera": self.scene.camera}


@dataclass
class DemoQueryResult:
    """One demo query: what was asked, what the student answered, and how it scored."""

    index: int
    scene: str
    category: str
    level: int
    query: str
    truth_ids: list[int]
    answer_ids: list[int] | None
    iou: float
    correct: bool
    seconds: float
    new_tokens: int
    failures: list[str]
    text: str
    folder: str
    overlays: dict[str, str] = field(default_factory=dict)


@dataclass
class DemoReport:
    """The whole run: results per query, timing, and where the files are."""

    out: str
    reasoner: str
    adapter: str | None
    results: list[DemoQueryResult]
    seconds: dict[str, float]

    @property
    def accuracy(self) -> float:
        return sum(r.correct for r in self.results) / max(1, len(self.results))

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "reasoner": self.reasoner, "adapter": self.adapter, "accuracy": self.accuracy,
                "seconds": self.seconds, "results": [asdict(r) for r in self.results]}


# --------------------------------------------------------------------------- scenes and queries


def _scene_queries(scene: Scene, category: str, wanted: int, seed: int, kb: Any) -> list[Query]:
    """Up to ``wanted`` distinct queries of ``category`` on ``scene`` (different texts and, preferably, levels)."""
    import numpy as np

    from fastreasonseg.data.queries import generate_query

    found: list[Query] = []
    texts: set[str] = set()
    for attempt in range(12 * wanted):
        rng = np.random.default_rng(np.random.SeedSequence([seed, DEMO_CATEGORIES.index(category), attempt]))
        # Prefer a spread of levels: ask each level in turn before allowing any.
        levels = (1 + (len(found) + attempt) % 4,) if attempt < 8 * wanted else (1, 2, 3, 4)
        query = generate_query(scene, rng, kb, categories=(category,), levels=levels, max_attempts=4)
        if query is not None and query.text not in texts:
            found.append(query)
            texts.add(query.text)
            if len(found) == wanted:
                break
    return found


def build_demo_scenes(config: DemoConfig) -> list[DemoScene]:
    """The demo's scenes with their queries (deterministic in ``config.seed``).

    Tries successive scenes until one has ``per_category`` queries of each category it hosts,
    so a category is never silently missing from the demo.
    """
    import numpy as np

    from fastreasonseg.data.knowledge import load_knowledge
    from fastreasonseg.data.scenes import SceneConfig, generate_scene

    kb = load_knowledge()
    plans = [("image", False, [c for c in config.categories if c != "temporal"]),
             ("video", True, [c for c in config.categories if c == "temporal"])]
    scenes: list[DemoScene] = []
    for name, video, categories in plans:
        if not categories:
            continue
        scene_config = SceneConfig(width=config.width, height=config.height, video=video,
                                   num_frames=config.num_frames)
        for attempt in range(20):
            rng = np.random.default_rng(np.random.SeedSequence([config.seed, int(video), attempt, 99]))
            scene = generate_scene(rng, scene_config, kb, scene_id=f"demo-{name}-{config.seed}-{attempt}")
            queries = [q for c in categories for q in _scene_queries(scene, c, config.per_category,
                                                                       config.seed + 1000 * attempt, kb)]
            if len(queries) == config.per_category * len(categories):
                scenes.append(DemoScene(name=name, scene=scene, queries=queries))
                break
        else:
            raise RuntimeError(f"no {name} scene with {config.per_category} queries of {categories} in 20 tries; "
                               "this is a generator bug")
    return scenes


# --------------------------------------------------------------------------- the run


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def run_demo(config: DemoConfig, backend: ReasonerBackend | None = None, *, log: Any = None) -> DemoReport:
    """Generate the scenes, answer the queries, write overlays and the report; return the report.

    ``backend`` overrides loading ``config.reasoner`` (a caller that already holds a model);
    ``log`` is a callable taking one status line (the CLI prints them).
    """
    from fastreasonseg.api.segmenter import ReasoningSegmenter
    from fastreasonseg.data.render import render_item
    from fastreasonseg.eval.scoring import score_answer
    from fastreasonseg.pipeline.inputs import MAX_QUERIES
    from fastreasonseg.reasoning.loader import ReasonerConfig

    say = log or (lambda _line: None)
    started = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", asdict(config))

    scenes = build_demo_scenes(config)
    for demo_scene in scenes:
        twin = demo_scene.scene.twin
        demo_scene.scene.twin.save(out / f"{demo_scene.name}_twin.json")
        render_item(twin, out / f"{demo_scene.name}_scene", scene=demo_scene.scene_meta)
    scenes_done = time.perf_counter()
    say(f"generated {len(scenes)} scenes, {sum(len(s.queries) for s in scenes)} queries "
        f"in {scenes_done - started:.1f} s")

    reasoner = backend or ReasonerConfig(spec=config.reasoner, adapter=config.adapter, backend=config.backend,
                                         threads=config.threads)
    segmenter = ReasoningSegmenter.from_pretrained(reasoner, twin_max_tokens=config.twin_max_tokens,
                                                   max_new_tokens=config.max_new_tokens)
    backend = segmenter.engine.backend
    loaded = time.perf_counter()
    say(f"loaded reasoner {config.reasoner!r} ({type(backend).__name__}, adapter: {backend.adapter}) "
        f"in {loaded - scenes_done:.1f} s")

    results: list[DemoQueryResult] = []
    for demo_scene in scenes:
        twin = demo_scene.scene.twin
        texts = [q.text for q in demo_scene.queries]  # at most MAX_QUERIES per call, like every caller
        segmented = [answer for first in range(0, len(texts), MAX_QUERIES)
                     for answer in segmenter.ask_many(texts[first:first + MAX_QUERIES], scene=twin)]
        for query, answered in zip(demo_scene.queries, segmented, strict=True):
            rollout = answered.rollout
            index = len(results) + 1
            folder = out / "queries" / f"{index:02d}_{query.category}"
            folder.mkdir(parents=True, exist_ok=True)
            answer = rollout.parsed.answer_ids
            truth_frames = [twin.union_mask(query.answer_ids, f.index) for f in twin.frames]
            score = score_answer(answer, twin, truth_frames)
            overlays = {
                "answer": render_item(twin, folder / "answer", highlight_ids=answer or [],
                                      scene=demo_scene.scene_meta).name,
                "truth": render_item(twin, folder / "truth", highlight_ids=query.answer_ids,
                                     scene=demo_scene.scene_meta).name,
            }
            result = DemoQueryResult(
                index=index, scene=demo_scene.name, category=query.category, level=query.level, query=query.text,
                truth_ids=list(query.answer_ids), answer_ids=answer, iou=round(score.iou, 4),
                correct=score.passes(CORRECT_IOU), seconds=round(rollout.seconds, 3), new_tokens=rollout.new_tokens,
                failures=[f.code for f in rollout.failures], text=rollout.text,
                folder=str(folder.relative_to(out)), overlays=overlays)
            _write_json(folder / "result.json", [answered.to_json()])  # the frs segment contract
            _write_json(folder / "score.json", {**asdict(result), "rollout": rollout.to_dict(),
                                                "program": query.program.to_dict(),
                                                "twin": f"../../{demo_scene.name}_twin.json"})
            results.append(result)
            say(f"[{index}/{sum(len(s.queries) for s in scenes)}] {query.category} L{query.level}: "
                f"{'correct' if result.correct else 'wrong'} (IoU {result.iou:.2f}, {result.seconds:.1f} s)")
    finished = time.perf_counter()
    report = DemoReport(out=str(out), reasoner=config.reasoner, adapter=backend.adapter, results=results,
                        seconds={"scenes": round(scenes_done - started, 2), "load": round(loaded - scenes_done, 2),
                                 "reasoning": round(finished - loaded, 2), "total": round(finished - started, 2)})
    _write_json(out / "report.json", report.to_dict())
    (out / "report.md").write_text(report_markdown(report))
    return report


def _ids(ids: list[int] | None) -> str:
    return "unparsed" if ids is None else json.dumps(ids)


def _expectation_lines(adapter: str | None) -> list[str]:
    """What score to expect: none loaded (base model), or the adapter's own measured score (its eval_summary.json)."""
    from fastreasonseg.reasoning.loader import adapter_eval_summary, summary_metrics

    if adapter is None:
        return ["No distilled adapter is loaded: this is the base model prompted with worked examples, so expect few "
                "correct answers (train one with `frs sft` / `frs rl`, or pass `--adapter`).", ""]
    summary = adapter_eval_summary(adapter) or {}
    overall = summary_metrics(summary).get("overall") or {}
    giou = overall.get("gIoU")
    if not isinstance(giou, (int, float)):
        return ["This adapter carries no measured score (no eval_summary.json beside it).", ""]
    data = summary.get("data") or "its evaluation data"
    count = overall.get("count")
    return [f"This adapter scored {100 * giou:.0f}% gIoU on {data}" + (f" ({count} items)" if count else "")
            + " (its eval_summary.json), so about that share of these six should be right. Wrong answers are shown "
            "beside the truth below.", ""]


def report_markdown(report: DemoReport) -> str:
    """The human-readable report: a table of the queries, then each rollout's reasoning."""
    lines = [
        "# fastreasonseg demo",
        "",
        f"Reasoner: `{report.reasoner}` (adapter: {report.adapter or 'none'}). "
        f"Correct: {sum(r.correct for r in report.results)}/{len(report.results)} (IoU > {CORRECT_IOU}). "
        f"Time: {report.seconds['total']:.1f} s total = scenes {report.seconds['scenes']:.1f} s"
        f" + model load {report.seconds['load']:.1f} s + reasoning {report.seconds['reasoning']:.1f} s.",
        "",
        *_expectation_lines(report.adapter),
        "Scenes: `image_scene.png`, `video_scene.gif` (twins: `*_twin.json`). Per query: `queries/NN_category/` "
        "holds `result.json` (as `frs segment` writes it), `score.json` and overlays of the answer and the truth.",
        "",
        "| # | category | level | query | answer | truth | IoU | correct | seconds | tokens |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        query = r.query.replace("|", "\\|")
        lines.append(f"| {r.index} | {r.category} | L{r.level} | {query} | {_ids(r.answer_ids)} | "
                     f"{json.dumps(r.truth_ids)} | {r.iou:.2f} | {'yes' if r.correct else 'no'} | "
                     f"{r.seconds:.1f} | {r.new_tokens} |")
    lines += ["", "## Reasoning", ""]
    for r in report.results:
        failures = f" Failures: {', '.join(r.failures)}." if r.failures else ""
        lines += [f"### {r.index}. {r.query}", "",
                  f"{r.category} L{r.level}, scene {r.scene}; answer {_ids(r.answer_ids)}, truth "
                  f"{json.dumps(r.truth_ids)}; overlays `{r.folder}/{r.overlays.get('answer', '')}`, "
                  f"`{r.folder}/{r.overlays.get('truth', '')}`.{failures}", "",
                  "```text", r.text.strip() or "(no output)", "```", ""]
    return "\n".join(lines)
