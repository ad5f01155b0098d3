"""Generate synthetic raw purchases shaped like the Hotmart 2016 sample, then print the calibration.

./spark-submit.sh jobs/generate.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("generate"))
