"""Shared pieces of the benchmarks."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from atiende.core.config import Settings
from atiende.core.migrate import upgrade_async

POSTGRES_URL = os.environ.get("ATIENDE_BENCH_POSTGRES_URL")


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    ceiling: float
    higher_is_better: bool

    @property
    def ok(self) -> bool:
        return self.value >= self.ceiling if self.higher_is_better else self.value <= self.ceiling

    def line(self, width: int) -> str:
        relation = ">=" if self.higher_is_better else "<="
        verdict = "PASS" if self.ok else "FAIL"
        return (
            f"{self.name:<{width}}  {self.value:>10.2f} {self.unit:<8} "
            f"(ceiling {relation} {self.ceiling:g} {self.unit})  {verdict}"
        )


async def sqlite_settings(tmp: Path) -> Settings:
    settings = Settings(
        data_dir=tmp,
        secret_key="bench",
        environment="test",
        auto_migrate=False,
        embedded_worker=False,
    )
    await upgrade_async(settings.resolved_database_url)
    return settings


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


def median(samples: list[float]) -> float:
    return statistics.median(samples)
