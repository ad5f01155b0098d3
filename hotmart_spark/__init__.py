"""hotmart-spark: a PySpark pipeline for a digital-products marketplace's purchase log."""

import os

# The driver's numerical libraries (NumPy's and SciPy's BLAS, scikit-learn's OpenMP) run on
# one thread. Their matrices are catalogue-sized; more threads split sums differently from
# run to run (the effect estimates' last digits changed), and OpenMP's idle threads spin on
# the cores Spark's tasks need. The limit has to be in the environment before the libraries
# load: OpenMP applies a limit set later (threadpoolctl) only in the thread that set it, and
# the pipeline fits its models in threads of its own.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

__version__ = "0.1.0"
