"""Airflow `hostname_callable` for the cluster test: both Celery workers run on this one machine, so
each is told its name through CLUSTER_TEST_WORKER_NAME and records it as the task instance's hostname."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return os.environ.get("CLUSTER_TEST_WORKER_NAME") or socket.getfqdn()
