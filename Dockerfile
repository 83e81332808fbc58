# The image every Airflow service of docker-compose.yaml runs: Airflow 3.3.2 on Python 3.11 with the
# project's pinned requirements and the `pipelines` package installed.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*
USER airflow
# Owned by airflow before the compose volumes mount here: a fresh named volume copies this ownership,
# so tasks (user airflow) can write artifacts that the API server's Marketing pages then show.
RUN mkdir -p /opt/airflow/artifacts /opt/airflow/state

WORKDIR /opt/airflow/project
COPY --chown=airflow:root requirements.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=airflow:root src ./src
COPY --chown=airflow:root sql ./sql
COPY --chown=airflow:root dags ./dags
COPY --chown=airflow:root plugins ./plugins
RUN pip install --no-cache-dir --no-deps -e .
