"""Load a generated (or any) purchase export into a MySQL/MariaDB table, for demos and tests.

./spark-submit.sh jobs/load_mysql.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("load_mysql"))
