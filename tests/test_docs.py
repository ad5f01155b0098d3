"""The docs against what a run writes: every table's columns and every insights.json key in
docs/outputs.md, both ways; the README's commands and size."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pyspark.sql import SparkSession

from hotmart_spark import outputs
from tests.conftest import SmallRun

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "outputs.md"


def documented(heading_level: str) -> dict[str, list[str]]:
    """Per `### \\`name\\`` heading of docs/outputs.md, the names in its table's first column."""
    found: dict[str, list[str]] = {}
    current = None
    for line in CONTRACT.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(rf"{heading_level} `([^`]+)`", line)
        if heading:
            current = heading.group(1)
            found[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None:
            cell = re.match(r"\| `([^`]+)` \|", line)
            if cell:
                found[current].append(cell.group(1))
    return found


def test_every_table_is_documented_with_exactly_its_columns(
    spark: SparkSession, small_run: SmallRun
) -> None:
    columns = documented("###")
    tables = [name for name, output in outputs.OUTPUTS.items() if output.is_table]
    for table in tables:
        actual = spark.read.parquet(str(small_run.out / table)).columns
        assert table in columns, f"docs/outputs.md has no section for {table}"
        assert sorted(columns[table]) == sorted(actual), table


def test_every_insights_key_is_documented(small_run: SmallRun) -> None:
    keys = documented("###")
    insights = json.loads((small_run.out / "report" / "insights.json").read_text())
    for section, numbers in insights.items():
        assert outputs.insights(section) in outputs.OUTPUTS, section
        actual = []
        for key, value in numbers.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                actual += [f"{key}[].{field}" for field in value[0]]
            elif value == [] and any(k.startswith(f"{key}[].") for k in keys[section]):
                # A list of records that is empty on this run: its documented fields stand.
                actual += [k for k in keys[section] if k.startswith(f"{key}[].")]
            else:
                actual.append(key)
        absent = {"last_run"} if section == "run" else set()  # month-range runs only
        assert sorted(set(keys[section]) - absent) == sorted(actual), section


def test_the_contract_lists_every_output_path() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    for name, output in outputs.OUTPUTS.items():
        if output.is_table:
            assert f"| `{name}/` | {output.stage} |" in text, name


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 260
    # No dated runs or CI timings in the prose (dates in example commands are fine): those
    # live in bench/.
    prose = re.sub(r"```.*?```", "", readme, flags=re.DOTALL)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", prose)
    for command in ("make demo", "make test", "make test-fast"):
        assert command in readme


def test_every_relative_link_in_the_docs_resolves() -> None:
    pages = [ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").rglob("*.md")]
    for page in pages:
        for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not link.startswith("http"):
                assert (page.parent / link).exists(), f"{page.name} links to missing {link}"
