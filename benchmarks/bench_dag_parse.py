"""DAG parse time per file, as the DAG processor pays it: Airflow already imported, then the file parsed.

Each repetition is a fresh interpreter (so no module cache flatters the figure). Writes the median and
maximum per file to docs/benchmarks.md. Target: under 0.3 s per file.

    .venv/bin/python benchmarks/bench_dag_parse.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine, replace_section

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
assert not bag.import_errors, bag.import_errors
print(json.dumps({"seconds": seconds, "dags": len(bag.dags)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rows = []
    for path in sorted((ROOT / "dags").glob("*.py")):
        times = []
        for _ in range(args.repeat):
            done = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True)
            times.append(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
        rows.append((path.name, statistics.median(times), max(times)))
        print(f"{path.name}: median {statistics.median(times):.3f} s, max {max(times):.3f} s over {args.repeat} runs")
    table = "\n".join(f"| `{name}` | {med:.3f} | {worst:.3f} |" for name, med, worst in rows)
    replace_section(
        "DAG parse time",
        f"""Protocol: a fresh interpreter per repetition imports `airflow.sdk` (the DAG processor has it loaded
already), then times `DagBag(dag_folder=<file>)`: import of the file, DAG construction, bagging.
{args.repeat} repetitions per file. Target: under 0.3 s per file. Command:
`.venv/bin/python benchmarks/bench_dag_parse.py --repeat {args.repeat}`. Machine: {machine()}.

| file | median (s) | max (s) |
| --- | --- | --- |
{table}""",
    )


if __name__ == "__main__":
    main()
