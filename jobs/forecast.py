"""Revenue forecast (Q5): the next months' value and platform revenue, backtested, with intervals.

./spark-submit.sh jobs/forecast.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("forecast"))
