"""Hand-written spot check: everyday requests over small hand-made twins with COCO labels.

    .venv/bin/python scripts/spot_check.py                       # the embedded default student
    .venv/bin/python scripts/spot_check.py --adapter RUN/checkpoint-200 [--verbose]
    .venv/bin/python scripts/spot_check.py --reasoner base --adapter ...   (any frs reasoner spec)

Not training data and not used to choose a checkpoint's hyper-parameters: it records how a
model does on requests written the way a person asks (no synthetic templates), beside the
synthetic dev and test splits. Twins are image twins with boxes and depth only (no masks):
an answer counts as right when its id set equals the expected one exactly.
"""

from __future__ import annotations

import argparse
import sys
import time

from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object

W, H = 640, 480
# scene -> [(id, label, box xyxy, depth)]; depth: 0 near .. 1 far.
SCENES: dict[str, list[tuple[int, str, tuple[int, int, int, int], float]]] = {
    "kitchen": [(1, "cutting board", (200, 300, 420, 360), 0.35), (2, "bread", (240, 270, 380, 320), 0.34),
                (3, "knife", (430, 320, 560, 340), 0.30), (4, "cup", (60, 250, 110, 320), 0.50),
                (5, "spoon", (120, 330, 190, 345), 0.32), (6, "refrigerator", (540, 20, 640, 400), 0.80),
                (7, "potted plant", (10, 100, 80, 230), 0.75), (8, "bowl", (450, 250, 530, 300), 0.45)],
    "living room": [(1, "couch", (40, 200, 360, 400), 0.55), (2, "tv", (420, 80, 620, 220), 0.85),
                    (3, "remote", (250, 380, 300, 400), 0.30), (4, "dog", (380, 330, 520, 450), 0.25),
                    (5, "book", (560, 380, 620, 420), 0.40), (6, "chair", (520, 230, 620, 400), 0.60),
                    (7, "lamp", (0, 40, 60, 260), 0.70)],
    "street": [(1, "person", (100, 150, 160, 400), 0.40), (2, "person", (420, 180, 460, 330), 0.75),
               (3, "dog", (170, 330, 240, 400), 0.38), (4, "car", (250, 220, 420, 330), 0.65),
               (5, "bicycle", (480, 260, 600, 360), 0.55), (6, "traffic light", (600, 20, 630, 120), 0.90),
               (7, "umbrella", (90, 100, 180, 160), 0.40)],
    "office": [(1, "laptop", (200, 240, 360, 330), 0.40), (2, "keyboard", (380, 300, 520, 340), 0.35),
               (3, "mouse", (540, 310, 570, 330), 0.33), (4, "cup", (120, 260, 160, 320), 0.42),
               (5, "scissors", (40, 320, 100, 340), 0.30), (6, "chair", (250, 330, 450, 480), 0.20),
               (7, "bottle", (600, 200, 630, 300), 0.45)],
}
# (scene, request, expected ids)
REQUESTS: list[tuple[str, str, list[int]]] = [
    ("kitchen", "What would I use to slice the loaf?", [3]),
    ("kitchen", "the thing I would cut the bread with", [3]),
    ("kitchen", "something to drink my coffee from", [4]),
    ("kitchen", "where do I keep the milk cold", [6]),
    ("kitchen", "the plant", [7]),
    ("kitchen", "what can I stir my soup with?", [5]),
    ("living room", "I want to watch the news", [2]),
    ("living room", "where can I sit down?", [1, 6]),
    ("living room", "the animal", [4]),
    ("living room", "which thing changes the channel", [3]),
    ("living room", "something to read", [5]),
    ("living room", "the object on the far left", [7]),
    ("street", "the person nearest to the dog", [1]),
    ("street", "the vehicle I could pedal", [5]),
    ("street", "what keeps you dry when it rains", [7]),
    ("street", "the person farther away", [2]),
    ("street", "the car", [4]),
    ("office", "I need to cut some paper", [5]),
    ("office", "my drink", [4, 7]),
    ("office", "the thing I type on", [2]),
    ("office", "where do I sit", [6]),
    ("office", "the computer", [1]),
]


def twin_of(scene: str) -> DigitalTwin:
    objects = tuple(make_object(i, label, 0.9, box, depth=(depth, 0.02)) for i, label, box, depth in SCENES[scene])
    return DigitalTwin(source=Source(kind="image", width=W, height=H), frames=(Frame(0, 0.0, objects),))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reasoner", default="default")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    from fastreasonseg.api.segmenter import ReasoningSegmenter

    right, seconds = 0, []
    with ReasoningSegmenter.from_pretrained(args.reasoner, adapter=args.adapter) as seg:
        for scene, request, expected in REQUESTS:
            started = time.perf_counter()
            result = seg.ask(request, scene=twin_of(scene))
            seconds.append(time.perf_counter() - started)
            ok = sorted(result.object_ids) == sorted(expected)
            right += ok
            print(f"{'ok ' if ok else 'NO '} {scene:12s} {request!r}: {result.object_ids} (want {expected})")
            if args.verbose:
                print("    " + result.reasoning.replace("\n", "\n    "))
    seconds.sort()
    print(f"{right}/{len(REQUESTS)} right; median {seconds[len(seconds) // 2]:.2f} s/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
