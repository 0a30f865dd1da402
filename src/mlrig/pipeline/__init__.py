"""The training loop as named steps; Prefect (flows.py) is an optional orchestrator around them."""
