"""The analysis of small tables on the driver: pandas, statsmodels, scikit-learn, Spark ML."""
