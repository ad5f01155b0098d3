"""The run's records beside its tables: manifest.json (what each stage read, counted and took)
and report/insights.json (every headline number, under stable keys)."""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyspark

import hotmart_spark
from hotmart_spark.errors import UserError
from hotmart_spark.filesystem import is_local, local_path, write_atomically

MANIFEST = "manifest.json"
INSIGHTS = "report/insights.json"
# Stages running at the same time update the same manifest and insights files.
_JSON_LOCK = threading.Lock()


def versions() -> dict[str, str]:
    return {
        "hotmart_spark": hotmart_spark.__version__,
        "pyspark": pyspark.__version__,
        "python": platform.python_version(),
    }


def merge_json(
    path: Path, keys: tuple[str, ...], value: Any, extra: Mapping[str, Any] | None = None
) -> Path:
    """Set the entry at the key path (and top-level `extra` keys) in the JSON object at path,
    keeping everything else, and write it atomically."""
    # Read, change and write under one lock: a stage's update must not undo another's.
    with _JSON_LOCK:
        document: dict[str, Any] = {}
        if path.exists():
            document = json.loads(path.read_text(encoding="utf-8"))
        node = document
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        document.update(extra or {})
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(finite(document), indent=2, sort_keys=True, default=str, allow_nan=False)
        text += "\n"
        write_atomically(path, text.encode("utf-8"))
    return path


def finite(value: Any) -> Any:
    """value with every NaN or infinite float as None: strict JSON parsers reject the bare
    NaN and Infinity Python writes, and a number that is not finite is not defined."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def local_root(output_root: str) -> Path:
    """The output root as a local folder, or one line saying records need one."""
    if not is_local(output_root):
        raise UserError(f"manifest and insights need a local output root, got {output_root}")
    return local_path(output_root)


def update_manifest(output_root: str, stage: str, record: Mapping[str, Any]) -> Path:
    """Record one stage's inputs, counts, parameters and timings in manifest.json."""
    return merge_json(
        local_root(output_root) / MANIFEST,
        ("stages", stage),
        dict(record),
        {
            "versions": versions(),
            "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )


def update_insights(output_root: str, section: str, numbers: Mapping[str, Any]) -> Path:
    """Set one section of report/insights.json, the report's headline numbers."""
    return merge_json(local_root(output_root) / INSIGHTS, (section,), dict(numbers))


def read_insights(output_root: str) -> dict[str, Any]:
    """insights.json under an output root; empty when no stage has written it yet."""
    path = local_root(output_root) / INSIGHTS
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
