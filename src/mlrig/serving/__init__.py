"""The model server: framework-free predictor plus the FastAPI app factory."""
