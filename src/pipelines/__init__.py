"""Airflow-orchestrated machine learning for e-commerce personalised marketing.

Importing this package is cheap: heavy libraries (torch, pandas, Great Expectations) are imported
inside the functions that need them, so DAG files can import from here at parse time.
"""
