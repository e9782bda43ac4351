"""Run every benchmark: ``python -m bench [name ...]``.

Each benchmark prints one line: name, measured figure, ceiling, and PASS/FAIL. The process
exits non-zero when a figure misses its ceiling.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from bench import api_latency, job_throughput
from bench.common import Result

BENCHMARKS = {
    "api_latency": api_latency.run,
    "job_throughput": job_throughput.run,
}


async def main(names: list[str]) -> int:
    results: list[Result] = []
    for name in names or list(BENCHMARKS):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            results.extend(await BENCHMARKS[name](Path(tmp)))
    width = max(len(r.name) for r in results)
    failed = 0
    for result in results:
        failed += not result.ok
        print(result.line(width))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
