"""The package version, importable without importing the public API."""

__version__ = "0.1.0"
