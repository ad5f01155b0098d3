"""The code's shape: layers that import only downwards, and job scripts without logic."""

from __future__ import annotations

import ast
from pathlib import Path

from hotmart_spark import outputs, pipeline
from hotmart_spark.cli import JOBS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hotmart_spark"
# Lowest first; a module may import its own layer or lower ones. A module is in the layer of
# the longest prefix of its name listed here.
LAYERS: list[tuple[str, ...]] = [
    (
        "__init__",
        "errors",
        "schema",
        "warning_filters",
        "threads",
        "filesystem",
        "session",
        "progress",
    ),
    ("quality", "config", "outputs"),
    ("inputs", "tables", "records", "transforms", "generate"),
    ("jdbc", "runs"),
    ("analysis",),
    ("report",),
    ("stages.stage",),
    ("stages",),
    ("pipeline",),
    ("cli", "__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def layer(module: str) -> int:
    matches = [
        (len(prefix), level)
        for level, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(f"{prefix}.")
    ]
    assert matches, f"hotmart_spark.{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def package_imports(path: Path) -> set[str]:
    """The hotmart_spark modules a file imports (a name imported from a package counts as
    its module when there is one)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("hotmart_spark."):
                module = name.removeprefix("hotmart_spark.")
                if (PACKAGE / module.replace(".", "/")).with_suffix(".py").is_file() or (
                    PACKAGE / module.replace(".", "/")
                ).is_dir():
                    found.add(module)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): package_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{module} (layer {layer(module)}) imports {imported} (layer {layer(imported)})"
        for module, imports in import_graph().items()
        for imported in imports
        if layer(imported) > layer(module)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join([*path, module])}"
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*path, module])
        state[module] = "done"

    for module in graph:
        visit(module, [])


def test_a_layer_check_sees_an_upward_import() -> None:
    """The checks above would pass on a package with no imports at all."""
    graph = import_graph()
    assert "stages.stage" in graph["pipeline"]
    assert layer("transforms.rfm") < layer("stages.segments") < layer("pipeline")


def test_job_scripts_only_hand_over_to_their_job() -> None:
    """jobs/<name>.py: a docstring, two imports and `sys.exit(run_job("<name>"))`."""
    scripts = {p.stem: p for p in (ROOT / "jobs").glob("*.py")}
    assert set(scripts) == set(JOBS)
    for name, path in scripts.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        body = tree.body[1:] if ast.get_docstring(tree) else tree.body
        imports = [
            ast.unparse(node) for node in body if isinstance(node, ast.Import | ast.ImportFrom)
        ]
        assert imports == ["import sys", "from hotmart_spark.cli import run_job"], path
        (main,) = [node for node in body if not isinstance(node, ast.Import | ast.ImportFrom)]
        assert ast.unparse(main) == (
            f"if __name__ == '__main__':\n    sys.exit(run_job('{name}'))"
        ), path


def test_every_stage_reads_outputs_another_stage_writes() -> None:
    names = [stage.name for stage in pipeline.STAGES]
    for stage in pipeline.STAGES:
        for read in stage.reads:
            assert read in outputs.OUTPUTS, f"{stage.name} reads {read}, which is no output"
            writer = outputs.OUTPUTS[read].stage
            assert names.index(writer) < names.index(stage.name), (stage.name, read)
    assert {o.stage for o in outputs.OUTPUTS.values()} == set(names) - {"report"}
