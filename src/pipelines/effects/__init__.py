"""Effect evaluation: rates, lifts and off-policy estimates, each with a 95% interval.

Pure NumPy: every estimator also has a form that takes per-group sums, so the daily task aggregates in
PostgreSQL and never pulls one row per impression into Python.
"""
