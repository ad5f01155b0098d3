#!/usr/bin/env bash
# make dist: what a cluster needs to run the jobs, with nothing installed on its machines.
#
#   scripts/dist.sh [folder]        (default: dist)
#
# The folder holds
#   hotmart_spark-<version>-py3-none-any.whl  the package (its defaults and template inside)
#   hotmart-spark-env.tar.gz                  a virtual environment with the package and its
#                                             pinned dependencies, for --archives
#   hotmart-spark.py                          the script spark-submit runs: <job> [options]
#
# The environment is packed with venv-pack, which, as Spark's own documentation does with
# it, leaves the interpreter out: every machine needs this Python version at the same path
# (printed below). PySpark is left out too: spark-submit puts the cluster's own on the path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
python=${PYTHON:-$root/.venv/bin/python}
base=$("$python" -c 'import sys; print(sys._base_executable)')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$out"
mkdir -p "$out"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$root"
wheel=$(ls "$out"/hotmart_spark-*.whl)
"$base" -m venv "$work/env"
# The pinned dependencies of the package but PySpark, from pyproject.toml.
"$python" - "$root/pyproject.toml" > "$work/requirements.txt" <<'PY'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
for requirement in project["dependencies"]:
    if re.split(r"[=<>!~ ;\[]", requirement, maxsplit=1)[0].lower() != "pyspark":
        print(requirement)
PY
"$work/env/bin/pip" install --quiet --disable-pip-version-check -r "$work/requirements.txt"
"$work/env/bin/pip" install --quiet --disable-pip-version-check --no-deps "$wheel"
"$python" -m venv_pack --quiet --prefix "$work/env" --output "$out/hotmart-spark-env.tar.gz"
cp "$root/hotmart_spark/__main__.py" "$out/hotmart-spark.py"
chmod 644 "$out"/*
echo "built in $out: $(basename "$wheel"), hotmart-spark-env.tar.gz ($(du -h "$out/hotmart-spark-env.tar.gz" | cut -f1)), hotmart-spark.py"
echo "every machine needs Python $("$base" -c 'import platform; print(platform.python_version())') at $base"
