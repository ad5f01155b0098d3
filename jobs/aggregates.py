"""Marketplace marts: producer dependence (Q1) and patterns and trends (Q2), from clean purchases.

./spark-submit.sh jobs/aggregates.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("aggregates"))
