"""Privacy: erasing a customer everywhere on request (GDPR art. 17) and per-table retention.

- `tables`: the one registry of tables that hold personal data, and models trained on it;
- `erasure`: erasure requests, and the erasure itself (one transaction per table, artifacts after);
- `models`: what the model-task lifecycle asks before it warm-starts, serves or writes after an erasure;
- `retention`: dropping whole partitions older than each table's window;
- `steps`: the forget_users DAG's tasks.
"""
