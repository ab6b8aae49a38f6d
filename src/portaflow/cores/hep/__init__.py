"""HEP event reduction: synthetic NanoAOD-like data, a chunked columnar Z -> mu mu / MET reduction over
Dask (CPU or GPU), histogram products, a Z-peak fit and plots. Workflow entry points live in `steps`."""
