"""The records beside the tables: manifest.json (each run: what its stages read, counted and
took) and report/insights.json (every headline number, under stable keys), as strict JSON."""

from __future__ import annotations

import json
import math
import platform
import threading
from collections.abc import Mapping
from typing import Any

import pyspark

import hotmart_spark
from hotmart_spark import filesystem

MANIFEST = "manifest.json"
INSIGHTS_FILE = "insights.json"
INSIGHTS = f"report/{INSIGHTS_FILE}"
# Stages running at the same time update the same manifest and insights files.
_JSON_LOCK = threading.Lock()


def versions() -> dict[str, str]:
    return {
        "hotmart_spark": hotmart_spark.__version__,
        "pyspark": pyspark.__version__,
        "python": platform.python_version(),
    }


def merge_json(path: str, keys: tuple[str, ...], value: Any) -> str:
    """Set the entry at the key path in the JSON object at path, keeping everything else,
    and write it atomically."""
    # Read, change and write under one lock: a stage's update must not undo another's.
    with _JSON_LOCK:
        document = read_json(path)
        node = document
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        write_json(path, document)
    return path


def read_json(path: str) -> dict[str, Any]:
    """The JSON object in the file at path; empty when there is no such file."""
    data = filesystem.read_bytes(path)
    return {} if data is None else json.loads(data.decode("utf-8"))


def write_json(path: str, document: Mapping[str, Any]) -> str:
    """document as strict JSON (see finite), replacing the file at path whole."""
    text = json.dumps(finite(document), indent=2, sort_keys=True, default=str, allow_nan=False)
    filesystem.write_bytes(path, (text + "\n").encode("utf-8"))
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


def read_manifest(root: str) -> dict[str, Any]:
    return read_json(filesystem.join(root, MANIFEST))


def write_manifest(root: str, manifest: Mapping[str, Any]) -> str:
    return write_json(filesystem.join(root, MANIFEST), manifest)


def update_insights(report_folder: str, section: str, numbers: Mapping[str, Any]) -> str:
    """Set one section of insights.json, the report's headline numbers."""
    return merge_json(filesystem.join(report_folder, INSIGHTS_FILE), (section,), dict(numbers))


def read_insights(report_folder: str) -> dict[str, Any]:
    """insights.json in a report folder; empty when no stage has written it yet."""
    return read_json(filesystem.join(report_folder, INSIGHTS_FILE))
