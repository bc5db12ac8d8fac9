"""Thin Dagster wiring over the pure libraries: one module per concern."""
