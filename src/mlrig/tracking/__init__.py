"""The only package that imports MLflow: runs, datasets, registry, aliases, model loading."""
