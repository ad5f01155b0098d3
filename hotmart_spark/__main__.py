"""python -m hotmart_spark <job> [options]: any job, from an installed wheel alone."""

import sys

from hotmart_spark.cli import main

sys.exit(main())
