"""Datasets: reading (paths, URLs, CSV/Parquet), the feature contract, validation, splitting."""
