"""The storytelling report: report/report.html (self-contained), its charts as PNG, insights.json.

./spark-submit.sh jobs/report.py [--config FILE] [--input PATH] [--output DIR] [--set K=V ...]
"""

import sys

from hotmart_spark.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("report"))
