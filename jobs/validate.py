"""Validate raw purchases: clean rows to clean/ (by month), broken rows to quarantine/ with reasons.

./spark-submit.sh jobs/validate.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("validate"))
