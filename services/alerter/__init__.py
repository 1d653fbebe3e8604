"""Spike alerting on watched terms and entities: detector, engine and evaluation harness."""
