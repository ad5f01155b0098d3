"""bench/benchmark.py: the verdicts it prints on the targets of issue 8, from hand-made results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("benchmark", ROOT / "bench" / "benchmark.py")
benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark)


def result(rows: int, wall_s: float, core_ratio: float | None) -> dict[str, object]:
    measured: dict[str, object] = {"rows": rows, "wall_s": wall_s}
    if core_ratio is not None:
        measured["core_ratio"] = core_ratio
    return measured


def test_targets_met() -> None:
    # 325.7 / 80.0 = 4.07: the 16M run within 10x the 1.6M one.
    lines = benchmark.verdicts([result(1_600_000, 80.0, 21.5), result(16_000_000, 325.7, 8.0)])
    assert lines == [
        "target: pipeline on 1.6M rows < 90 s: 80.0 s, met",
        "core aggregates at 1,600,000: 21.5x DuckDB (no target)",
        "target: core aggregates at 16,000,000 <= 10x DuckDB: 8.0x, met",
        "target: 16M time <= 10x 1.6M time: 4.1x, met",
    ]


def test_targets_missed_at_their_bounds() -> None:
    # 90 s is not under 90 s; 10.0x DuckDB is within 10x, 10.1x is not; 1000 / 90 = 11.1.
    lines = benchmark.verdicts([result(1_600_000, 90.0, None), result(16_000_000, 1000.0, 10.1)])
    assert lines == [
        "target: pipeline on 1.6M rows < 90 s: 90.0 s, NOT met",
        "target: core aggregates at 16,000,000 <= 10x DuckDB: 10.1x, NOT met",
        "target: 16M time <= 10x 1.6M time: 11.1x, NOT met",
    ]
    assert benchmark.verdicts([result(16_000_000, 500.0, 10.0)]) == [
        "target: core aggregates at 16,000,000 <= 10x DuckDB: 10.0x, met"
    ]


def test_a_size_alone_measures_only_its_own_targets() -> None:
    assert benchmark.verdicts([result(100_000_000, 5583.7, None)]) == []


def test_the_spark_core_script_runs_on_a_clean_table(small_run, capsys, monkeypatch) -> None:
    """The script the benchmark submits runs the package's own transforms: a change of
    their signatures must show here, not at the next benchmark."""
    clean = small_run.out / "clean"
    monkeypatch.setattr("sys.argv", ["spark_core.py", str(clean)])
    exec(compile(benchmark.SPARK_CORE, "spark_core.py", "exec"), {"__name__": "__main__"})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(printed)["seconds"] > 0
