"""Science cores: plain libraries that take a Dask client and know nothing of engines or sites."""
