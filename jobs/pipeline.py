"""The scheduler: every stage in one Spark session, each started once the outputs it reads

./spark-submit.sh jobs/pipeline.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("pipeline"))
