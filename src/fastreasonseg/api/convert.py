"""Converters between answers/twins and ``supervision.Detections``, beside the core types, not on them.

``supervision`` is an optional extra (``pip install 'fastreasonseg[supervision]'``); it is
imported only inside these functions, and a missing install is an error that says how to get it.

- :func:`to_detections`: one frame's answer -> ``Detections`` (``xyxy`` float pixels, ``mask``
  (n, H, W) bool, ``confidence``, ``tracker_id`` = the twin's track ids, ``data["class_name"]``);
- :func:`twin_from_detections`: ``Detections`` -> a one-frame :class:`~fastreasonseg.twin.core.DigitalTwin`,
  so detections from another model (or an answer drawn and edited in supervision) can be asked about.

Not in the paper; supervision is simply where people already draw and track detections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fastreasonseg.errors import FrsError

if TYPE_CHECKING:
    from fastreasonseg.api.results import FrameAnswer
    from fastreasonseg.twin.core import DigitalTwin


def _supervision() -> Any:
    try:
        import supervision
    except ImportError:
        raise FrsError("the supervision conversion needs the 'supervision' package: "
                       "pip install 'fastreasonseg[supervision]'") from None
    return supervision


def to_detections(answer: FrameAnswer) -> Any:
    """``supervision.Detections`` of one frame's answer objects (empty when none is visible there)."""
    sv = _supervision()
    height, width = answer.object_masks.shape[1:]
    return sv.Detections(xyxy=answer.boxes.astype(np.float32).reshape(-1, 4),
                         mask=answer.object_masks.reshape(-1, height, width),
                         confidence=answer.scores.astype(np.float32),
                         tracker_id=np.array(answer.object_ids, dtype=int),
                         data={"class_name": np.array(answer.labels, dtype=str)})


def twin_from_detections(detections: Any, *, width: int | None = None, height: int | None = None,
                         labels: Sequence[str] | None = None, source_path: str | None = None) -> DigitalTwin:
    """A one-frame image twin of ``detections`` (boxes XYXY pixels; masks when present, else the boxes).

    Ids come from ``tracker_id`` (else 0..n-1), labels from ``labels``, ``data["class_name"]`` or
    ``class_id`` (else "object"), scores from ``confidence`` (else 1.0). The image size comes from
    the masks, else ``width`` and ``height`` must be given. Objects get no depth (supervision has none).
    """
    from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object

    count = len(detections)
    if detections.mask is not None:
        mask_height, mask_width = detections.mask.shape[1:]
        if (width, height) not in ((None, None), (mask_width, mask_height)):
            raise FrsError(f"width/height {width}x{height} differ from the masks' {mask_width}x{mask_height}")
        width, height = mask_width, mask_height
    if width is None or height is None:
        raise FrsError("detections without masks need the image size: pass width= and height=")
    ids = ([int(i) for i in detections.tracker_id] if detections.tracker_id is not None else list(range(count)))
    if labels is not None:
        names = [str(label) for label in labels]
    elif "class_name" in detections.data:
        names = [str(label) for label in detections.data["class_name"]]
    elif detections.class_id is not None:
        names = [str(int(c)) for c in detections.class_id]
    else:
        names = ["object"] * count
    if len(names) != count:
        raise FrsError(f"{len(names)} labels for {count} detections")
    scores = detections.confidence if detections.confidence is not None else np.ones(count)
    objects = tuple(
        make_object(ids[row], names[row], float(scores[row]), [float(v) for v in detections.xyxy[row]],
                    mask=None if detections.mask is None else np.asarray(detections.mask[row], dtype=bool))
        for row in range(count))
    source = Source(kind="image", width=int(width), height=int(height), path=source_path)
    return DigitalTwin(source=source, frames=(Frame(0, 0.0, objects),))
