"""Loaders for the real evaluation benchmarks, all yielding one :class:`BenchmarkSample` type.

    from fastreasonseg.data.benchmarks import load_benchmark
    bench = load_benchmark("reasonseg", "/data/ReasonSeg", split="test", length="long")
    for sample in bench:                       # lazy: masks decode only when asked for
        pred = segment(sample.frame_paths, sample.query)
        gt, ignore = sample.gt_mask(0), sample.ignore_mask(0)

Registered names (``load_benchmark`` options are the fields of each loader's config):

=====================  ===============================  ========================
name                   format                           config
=====================  ===============================  ========================
reasonseg              LISA folders ``{split}/X.jpg+json``  :class:`ReasonSegConfig`
reasonseg_parquet      HF parquet (Seg-Zero export)     :class:`ReasonSegParquetConfig`
llmseg40k              LLM-Seg40K split JSON + RLE      :class:`LlmSegConfig`
revos                  ReVOS meta_expressions + masks   :class:`ReVOSConfig`
davis, jitbench,       DAVIS folders + a query JSON     :class:`DavisQueryConfig`
rvtbench
=====================  ===============================  ========================
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from fastreasonseg.data.benchmarks.base import (
    Benchmark,
    BenchmarkError,
    BenchmarkFormatError,
    BenchmarkSample,
    MaskSource,
)
from fastreasonseg.data.benchmarks.davis import DavisQueryBenchmark, DavisQueryConfig
from fastreasonseg.data.benchmarks.llmseg import LlmSeg40kBenchmark, LlmSegConfig
from fastreasonseg.data.benchmarks.reasonseg import (
    ReasonSegBenchmark,
    ReasonSegConfig,
    ReasonSegParquetBenchmark,
    ReasonSegParquetConfig,
)
from fastreasonseg.data.benchmarks.revos import ReVOSBenchmark, ReVOSConfig

BENCHMARKS: dict[str, type[Benchmark]] = {
    "reasonseg": ReasonSegBenchmark,
    "reasonseg_parquet": ReasonSegParquetBenchmark,
    "llmseg40k": LlmSeg40kBenchmark,
    "revos": ReVOSBenchmark,
    "davis": DavisQueryBenchmark,
    # JiTBench and RVTBench ship DAVIS/SA-V style folders with a query file; their exact
    # field names are not public here, so they go through the configurable DAVIS loader.
    "jitbench": DavisQueryBenchmark,
    "rvtbench": DavisQueryBenchmark,
}


def list_benchmarks() -> list[str]:
    """Names accepted by :func:`load_benchmark`."""
    return sorted(BENCHMARKS)


def load_benchmark(name: str, root: str | Path, split: str | None = None, **options: Any) -> Benchmark:
    """Open benchmark ``name`` at ``root``; ``options`` are fields of that loader's config dataclass.

    ``split=None`` uses the loader's default split (reasonseg: val, llmseg40k: val,
    revos: valid; parquet and DAVIS-style: all files / the configured query file).
    """
    key = name.strip().lower().replace("-", "_")
    if key not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; choose from {', '.join(list_benchmarks())}")
    cls = BENCHMARKS[key]
    allowed = [f.name for f in fields(cls.config_class)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BenchmarkError(f"benchmark {key!r} has no option {', '.join(unknown)}; options: {', '.join(allowed)}")
    return cls(root, split, cls.config_class(**options), benchmark_name=key)


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkError",
    "BenchmarkFormatError",
    "BenchmarkSample",
    "DavisQueryBenchmark",
    "DavisQueryConfig",
    "LlmSeg40kBenchmark",
    "LlmSegConfig",
    "MaskSource",
    "ReVOSBenchmark",
    "ReVOSConfig",
    "ReasonSegBenchmark",
    "ReasonSegConfig",
    "ReasonSegParquetBenchmark",
    "ReasonSegParquetConfig",
    "list_benchmarks",
    "load_benchmark",
]
