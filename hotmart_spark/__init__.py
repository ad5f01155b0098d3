"""hotmart-spark: a PySpark pipeline for a digital-products marketplace's purchase log."""

__version__ = "0.1.0"
