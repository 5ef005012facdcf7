"""The benchmark registry and the shared sample type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastreasonseg.data.benchmarks import (
    BENCHMARKS,
    BenchmarkError,
    BenchmarkFormatError,
    BenchmarkSample,
    MaskSource,
    list_benchmarks,
    load_benchmark,
)
from fastreasonseg.errors import FrsError


class _Stripes(MaskSource):
    """Frame k: column k is the target, row 0 is ignored."""

    def target(self, frame: int) -> np.ndarray:
        mask = np.zeros((3, 4), dtype=bool)
        mask[:, frame] = True
        return mask

    def ignore(self, frame: int) -> np.ndarray | None:
        mask = np.zeros((3, 4), dtype=bool)
        mask[0] = True
        return mask

    def instances(self, frame: int) -> dict[int, np.ndarray]:
        return {5: self.target(frame)}


def make_sample(**overrides) -> BenchmarkSample:
    values = dict(benchmark="toy", sample_id="s", frame_paths=(Path("a/f0.jpg"), Path("a/f1.jpg")), query="the thing",
                  object_ids=(5,), masks=_Stripes())
    values.update(overrides)
    return BenchmarkSample(**values)


def test_sample_accessors_and_frame_indexing() -> None:
    sample = make_sample()
    assert sample.is_video and sample.num_frames == 2 and sample.image_path == Path("a/f0.jpg")
    assert sample.frame_names == ("f0", "f1")  # derived from the paths when not given
    assert [int(np.flatnonzero(m.any(axis=0))[0]) for m in sample.gt_masks()] == [0, 1]
    np.testing.assert_array_equal(sample.gt_mask(-1), sample.gt_mask(1))
    assert sample.ignore_mask(0)[0].all() and not sample.ignore_mask(0)[1:].any()
    assert list(sample.instance_masks(1)) == [5]
    with pytest.raises(IndexError, match="has 2 frame"):
        sample.gt_mask(2)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"frame_paths": ()}, "frame_paths is empty"),
        ({"query": "  "}, "query must be a non-empty string"),
        ({"length": "medium"}, "length must be one of"),
        ({"object_ids": (True,)}, "object_ids must be integers"),
        ({"frame_names": ("only-one",)}, "frame_names has 1 entries for 2 frames"),
    ],
)
def test_sample_validation(overrides: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make_sample(**overrides)


def test_registry_names_and_errors(tmp_path: Path) -> None:
    assert list_benchmarks() == sorted(BENCHMARKS)
    assert {"reasonseg", "reasonseg_parquet", "llmseg40k", "revos", "davis", "jitbench", "rvtbench"} <= set(BENCHMARKS)
    with pytest.raises(BenchmarkError, match="unknown benchmark 'refcoco'; choose from davis"):
        load_benchmark("refcoco", tmp_path)
    with pytest.raises(BenchmarkError, match="has no option colour; options: queries, length, image_ext"):
        load_benchmark("ReasonSeg", tmp_path, colour="red")
    with pytest.raises(BenchmarkError, match=r"root .*nowhere does not exist"):
        load_benchmark("llmseg40k", tmp_path / "nowhere")


def test_errors_are_user_facing() -> None:
    error = BenchmarkFormatError("x.json", "shapes[0].points", "empty polygon")
    assert str(error) == "x.json: field shapes[0].points: empty polygon"
    assert (error.file, error.field, error.problem) == ("x.json", "shapes[0].points", "empty polygon")
    assert isinstance(error, BenchmarkError) and isinstance(error, FrsError)
    assert str(BenchmarkFormatError("x.json", None, "not valid JSON")) == "x.json: not valid JSON"
