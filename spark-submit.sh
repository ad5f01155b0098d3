#!/usr/bin/env bash
# Submit any job in jobs/ to Spark, locally or to a cluster, with the package shipped as a zip.
#
#   ./spark-submit.sh [spark-submit options] jobs/<job>.py [job options]
#
# The cluster's spark-defaults.conf ($SPARK_CONF_DIR or $SPARK_HOME/conf) is always
# loaded. HOTMART_SPARK_PROFILE=local (the default) adds the project's local tuning,
# conf/spark-local.properties, over it; HOTMART_SPARK_PROFILE=cluster adds nothing, so the
# cluster's own settings apply (a --properties-file given here goes over them, as
# conf/spark-cluster.properties can). A --conf given here wins over all of them.
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

# The job's progress line is rewritten in place on a terminal; the driver's output reaches
# it through the launcher's pipe, so the driver is told here.
if [ -t 2 ]; then
    export HOTMART_SPARK_TERMINAL=1
fi

profile=${HOTMART_SPARK_PROFILE:-local}
case "$profile" in
    local) properties=(--properties-file "$root/conf/spark-local.properties" --load-spark-defaults) ;;
    cluster) properties=(--load-spark-defaults) ;;
    *) echo "error: HOTMART_SPARK_PROFILE must be local or cluster, not '$profile'" >&2
       exit 2 ;;
esac
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

# The package (pure Python, its template and defaults) travels as a zip on --py-files, so
# executors on other machines can import it; a job script imports nothing but the package.
# The same Python prints the jars folder of the Spark it will run (for the class archive below).
mkdir -p "$root/build"
spark_jars=$("$PYSPARK_DRIVER_PYTHON" - "$root" "${SPARK_HOME:-}" <<'PY'
import importlib.util, os, pathlib, sys, zipfile
root = pathlib.Path(sys.argv[1])
bundle_path = root / "build" / "hotmart_spark.zip"
# Written aside and renamed: a job already running imports from the zip while another starts.
partial = bundle_path.with_name(f"{bundle_path.name}.{os.getpid()}")
with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
    for path in sorted(p for p in (root / "hotmart_spark").rglob("*") if p.suffix in (".py", ".j2", ".toml")):
        bundle.write(path, path.relative_to(root))
os.replace(partial, bundle_path)
spec = importlib.util.find_spec("pyspark")
home = sys.argv[2] or (str(pathlib.Path(spec.origin).parent) if spec and spec.origin else "")
print(pathlib.Path(home, "jars") if home else "")
PY
)

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
java_options="-Dlog4j2.configurationFile=file:$root/conf/log4j2.properties -XX:+ExitOnOutOfMemoryError"
if [ "$profile" = local ]; then
    java_options="$java_options -XX:+UseParallelGC $jit_options"
fi
# --driver-java-options replaces spark.driver.extraJavaOptions wherever it was set, so the
# administrator's (spark-defaults.conf) come first and a --conf given here last: for a
# flag given twice, the JVM keeps the last.
defaults_file="${SPARK_CONF_DIR:-${spark_jars:+$(dirname "$spark_jars")/conf}}/spark-defaults.conf"
if [ -f "$defaults_file" ]; then
    admin=$(sed -n 's/^[[:space:]]*spark\.driver\.extraJavaOptions[[:space:]=]\+//p' "$defaults_file" | tail -n 1)
    java_options="${admin:+$admin }$java_options"
fi
for arg in "${spark_args[@]}"; do
    if [[ "$arg" == spark.driver.extraJavaOptions=* ]]; then
        java_options="$java_options ${arg#spark.driver.extraJavaOptions=}"
    fi
done
submit=("$submit" "${properties[@]}" --py-files "$root/build/hotmart_spark.zip")

# Class-data sharing: the driver JVM maps the classes a run loads (Spark's, Scala's,
# Hadoop's) from an archive instead of reading and verifying them from the jars every time
# (validation alone on 1.6M rows: 35.4-38.7 s against 41.5-43.1 s and 6-7 CPU seconds
# less; README, Performance). The first successful run of the pipeline job (whose classes
# are those of every stage's job) with a given JDK and Spark writes the archive as its JVM
# exits, and every later job maps it. An archive serves only the class path it was made
# with, so its name is a digest of the JDK and Spark's jars. A truncated archive crashes
# the JVM, so it is written under a temporary name and renamed only after a run that
# succeeded. HOTMART_SPARK_CDS=0 turns this off.
archive=
java_bin=$(command -v "${JAVA_HOME:+$JAVA_HOME/bin/}java" || true)
if [ "$profile" = local ] && [ "${HOTMART_SPARK_CDS:-1}" != 0 ] && [ -n "$java_bin" ] \
    && [ -d "$spark_jars" ]; then
    java_bin=$(readlink -f "$java_bin")
    cds_dir=${HOTMART_SPARK_CDS_DIR:-$root/build/cds}
    digest=$( { echo "$spark_jars"
        ls -l --time-style=+%s "$java_bin" "$(dirname "$java_bin")/../lib/server/libjvm.so" 2>/dev/null
        ls -l --time-style=+%s "$spark_jars"; } | sha1sum | cut -c1-16)
    archive="$cds_dir/driver-$digest.jsa"
fi
if [ -n "$archive" ] && [ -f "$archive" ]; then
    exec "${submit[@]}" --driver-java-options "$java_options -XX:SharedArchiveFile=$archive" \
        "${spark_args[@]}" "$job" "$@"
fi
if [ -z "$archive" ] || [ "$(basename "$job")" != pipeline.py ]; then
    exec "${submit[@]}" --driver-java-options "$java_options" "${spark_args[@]}" "$job" "$@"
fi
mkdir -p "$cds_dir"
partial="$archive.$$.partial"
# The job leaves this file only when it started Spark and finished: a run that stopped
# earlier (--help, a bad option) would archive too few classes for the runs after it.
export HOTMART_SPARK_CDS_DONE="$partial.done"
"${submit[@]}" --driver-java-options "$java_options -XX:ArchiveClassesAtExit=$partial -Xlog:cds*=off" \
    "${spark_args[@]}" "$job" "$@" &
driver=$!
# Not exec'd this once, so a scheduler's stop signal is passed on to the job.
trap 'kill -TERM "$driver" 2>/dev/null' TERM INT HUP
status=0
wait "$driver" || status=$?
while kill -0 "$driver" 2>/dev/null; do
    status=0
    wait "$driver" || status=$?
done
if [ "$status" = 0 ] && [ -s "$partial" ] && [ -f "$HOTMART_SPARK_CDS_DONE" ]; then
    # The archives of an earlier JDK or Spark serve no more.
    find "$cds_dir" -maxdepth 1 -name 'driver-*.jsa' ! -name "$(basename "$archive")" -delete
    mv -f "$partial" "$archive"
fi
rm -f "$partial" "$HOTMART_SPARK_CDS_DONE"
exit "$status"
