"""Product drivers (Q4): the product table, what makes a product sell more, and one lever's effect.

./spark-submit.sh jobs/drivers.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("drivers"))
