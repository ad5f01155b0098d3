"""One module per job: what it reads, what it writes, and run(spark, config) -> record.

Six of them form the pipeline (validate, aggregates, segments, drivers, forecast, report);
generate and load_mysql prepare inputs."""
