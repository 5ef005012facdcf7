"""``frs segment``, ``frs eval``, ``frs demo`` and ``frs serve`` build the same prompt for the same twin, query and
adapter, because each gets its engine from the one factory.

The backend is a recorder standing in for the loaded model (``load_reasoner`` is replaced in
the factory, so everything else — config defaults, rollout resolution, prompt building,
twin serialisation — is the real code of each command). It reports a distilled adapter, so
the prompt must carry no worked examples; a second case without an adapter must carry them.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend
from fastreasonseg.reasoning.prompt import PromptBuilder


class Recorder(ReasonerBackend):
    name = "recorder"

    def __init__(self, adapter: str | None) -> None:
        self.adapter = adapter
        self.prompts: list[tuple[str, list[dict[str, str]]]] = []

    def complete(self, request: GenerationRequest) -> Generation:
        query = request.messages[-1]["content"].rsplit("Request: ", 1)[-1]
        self.prompts.append((query, [dict(m) for m in request.messages]))
        # The answer depends on every character of the prompt, as a model's would.
        answer = zlib.crc32(json.dumps(request.messages).encode()) % 3 + 1
        return Generation(text=f"<reason>r</reason>\n<answer>[{answer}]</answer>", stop_reason="stop", new_tokens=5)


def prompts_for(recorder: Recorder, query: str) -> list[list[dict[str, str]]]:
    return [messages for asked, messages in recorder.prompts if asked == query]


@pytest.fixture
def recorder(request, monkeypatch) -> Recorder:
    import fastreasonseg.reasoning.factory as factory

    backend = Recorder(adapter=request.param)
    monkeypatch.setattr(factory, "load_reasoner", lambda config: backend)
    return backend


@pytest.mark.parametrize("recorder", ["/adapters/distilled", None], indirect=True, ids=["student", "base"])
def test_segment_eval_demo_and_serve_send_the_same_prompt(recorder: Recorder, tmp_path: Path) -> None:
    from fastreasonseg.api.files import segment_file
    from fastreasonseg.eval.demo import DemoConfig, run_demo
    from fastreasonseg.eval.runner import EvalConfig, run_eval
    from fastreasonseg.serve import ServeConfig, build_service
    from fastreasonseg.serve.service import Scene
    from fastreasonseg.twin.core import DigitalTwin

    # frs demo: its own scenes and queries; take the image scene's first query for the others
    run_demo(DemoConfig(out=str(tmp_path / "demo"), per_category=1, categories=("semantic", "spatial")))
    twin_path = tmp_path / "demo" / "image_twin.json"
    twin = DigitalTwin.load(twin_path)
    demo_query = recorder.prompts[0][0]
    demo = prompts_for(recorder, demo_query)[0]

    # frs segment on the saved twin
    report = segment_file(twin_path, [demo_query], tmp_path / "segment", overlays=False)
    segment = prompts_for(recorder, demo_query)[-1]

    # frs eval on a one-item synthetic file holding the same twin and query
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "x", "query": demo_query, "twin": twin.to_dict(), "answer_ids": [1]}) + "\n")
    run_eval(EvalConfig(benchmark="synthetic", items=str(items), out=str(tmp_path / "eval")))
    evaluation = prompts_for(recorder, demo_query)[-1]

    # frs serve: the service's engine on the same twin
    service = build_service(ServeConfig())
    try:
        [answer] = service.segment(Scene(scene_id="s", kind="twin", twin=twin, picture=None, perception_s=0.0),
                                   [demo_query])
    finally:
        service.close()
    served = prompts_for(recorder, demo_query)[-1]

    assert len(prompts_for(recorder, demo_query)) == 4
    assert demo == segment == evaluation == served
    assert answer["answer"]["object_ids"] == report.results[0].object_ids  # CLI and service answer alike
    with_examples = PromptBuilder(few_shot=True).examples
    has_examples = any(m in demo for m in with_examples)
    assert has_examples is (recorder.adapter is None), "worked examples only for a model without a distilled adapter"
