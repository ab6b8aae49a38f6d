"""portaflow: one workflow description, compiled for any research computing site."""

__version__ = "0.1.0"
