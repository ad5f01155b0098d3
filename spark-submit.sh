#!/usr/bin/env bash
# Submit any job in jobs/ to Spark, locally or to a cluster, with the package shipped as a zip.
#
#   ./spark-submit.sh [spark-submit options] jobs/<job>.py [job options]
#
# HOTMART_SPARK_PROFILE=cluster picks conf/spark-cluster.properties (default: local);
# SPARK_MASTER=spark://host:7077 (or --master) sends the job to a cluster master.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)

spark_args=()
while [ $# -gt 0 ] && [[ "$1" != *.py ]]; do
    spark_args+=("$1")
    shift
done
if [ $# -eq 0 ]; then
    echo "usage: $0 [spark-submit options] jobs/<job>.py [job options]" >&2
    exit 2
fi
job=$1
shift
if [ ! -f "$job" ]; then
    echo "error: job script not found: $job" >&2
    exit 2
fi

if [ -n "${SPARK_HOME:-}" ] && [ -x "$SPARK_HOME/bin/spark-submit" ]; then
    submit="$SPARK_HOME/bin/spark-submit"
elif [ -x "$root/.venv/bin/spark-submit" ]; then
    submit="$root/.venv/bin/spark-submit"
elif command -v spark-submit >/dev/null 2>&1; then
    submit=$(command -v spark-submit)
else
    echo "error: spark-submit not found; run 'make venv' or set SPARK_HOME" >&2
    exit 2
fi

# The driver and the executors need the same Python with pandas and the rest installed.
if [ -z "${PYSPARK_PYTHON:-}" ] && [ -x "$root/.venv/bin/python" ]; then
    export PYSPARK_PYTHON="$root/.venv/bin/python"
fi
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-${PYSPARK_PYTHON:-python3}}"

profile=${HOTMART_SPARK_PROFILE:-local}
properties="$root/conf/spark-$profile.properties"
if [ ! -f "$properties" ]; then
    echo "error: no Spark properties for profile '$profile': $properties" >&2
    exit 2
fi
# MariaDB Connector/J (Debian: libmariadb-java) reads jdbc:mysql:// inputs; it goes along
# whenever it is installed.
mariadb_jar=${HOTMART_JDBC_JAR:-/usr/share/java/mariadb-java-client.jar}
if [ -f "$mariadb_jar" ]; then
    spark_args=(--jars "$mariadb_jar" "${spark_args[@]}")
elif [[ " $* " == *" jdbc:"* ]] || [[ " $* " == *"=jdbc:"* ]]; then
    echo "error: a JDBC input needs MariaDB Connector/J: install libmariadb-java (Debian) or set HOTMART_JDBC_JAR" >&2
    exit 2
fi
if [ -n "${SPARK_MASTER:-}" ]; then
    spark_args=(--master "$SPARK_MASTER" "${spark_args[@]}")
fi

# Pure Python travels as a zip on --py-files, so executors on other machines can import it;
# the jobs go along because the pipeline job imports the others.
mkdir -p "$root/build"
"$PYSPARK_DRIVER_PYTHON" - "$root" <<'PY'
import pathlib, sys, zipfile
root = pathlib.Path(sys.argv[1])
with zipfile.ZipFile(root / "build" / "hotmart_spark.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
    for path in sorted(p for d in ("hotmart_spark", "jobs") for p in (root / d).rglob("*") if p.suffix in (".py", ".j2")):
        bundle.write(path, path.relative_to(root))
PY

# A driver out of heap in a thread other than main (the one serving toPandas, say) otherwise
# leaves the job waiting forever instead of failing, which a scheduler cannot tell from work.
# The parallel garbage collector: the driver's work is throughput, not pauses, and G1's own
# bookkeeping competes for the cores (the pipeline on 1.6M rows in local[2], with two other
# changes of the same day: 266-278 CPU seconds against 293-343 with G1 in interleaved runs;
# the test suite 9.5 min instead of 14; see README, Performance and Tests).
# Smaller inlining limits for C2, the JIT's optimizing compiler: a fresh JVM that runs a few
# hundred short Spark jobs spends about a third of its CPU compiling, and C2's time grows
# with what it inlines (the pipeline on 1.6M rows in local[2], interleaved: 99.7 and 105.0 s
# against 114.8 and 117.1 s with the defaults, 179-188 CPU seconds against 212-215; README,
# Performance).
jit_options="-XX:InlineSmallCode=1000 -XX:FreqInlineSize=100"
exec "$submit" --properties-file "$properties" --py-files "$root/build/hotmart_spark.zip" \
    --driver-java-options "-Dlog4j2.configurationFile=file:$root/conf/log4j2.properties -XX:+ExitOnOutOfMemoryError -XX:+UseParallelGC $jit_options" \
    "${spark_args[@]}" "$job" "$@"
