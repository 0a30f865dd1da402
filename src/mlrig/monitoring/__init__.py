"""Monitoring: drift and live quality of served models, from the prediction log."""
