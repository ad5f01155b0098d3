"""Segments (Q3): buyer RFM scores and named segments; producer clusters, from clean purchases.

./spark-submit.sh jobs/segments.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("segments"))
