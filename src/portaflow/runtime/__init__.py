"""What runs inside a job: the entry point for python/dask steps and the Dask cluster they get."""
