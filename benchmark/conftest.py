"""`pytest benchmark/`: the robustness regression gate (see benchmark/test_robustness.py and docs/gate.md).

Options: --mmrb-suite PATH (repeatable; default suites/smoke.yaml), --mmrb-out DIR (run folders, default runs/gate:
finished cells are resumed, so an unchanged re-run takes seconds), --mmrb-cache DIR, --mmrb-device,
--mmrb-backend NAME (a backend of benchmark.run.backends: local, ray, ...) and --mmrb-address (Ray), and
--mmrb-speed (time each attack on a small batch with pytest-benchmark: adversarial examples per second)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUITE = ROOT / "suites" / "smoke.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mmrb", "mmrb robustness gate")
    group.addoption("--mmrb-suite", action="append", default=[], metavar="PATH",
                    help="suite YAML to gate on (repeatable; default suites/smoke.yaml)")
    group.addoption("--mmrb-out", default="runs/gate", metavar="DIR", help="folder of the suites' run folders")
    group.addoption("--mmrb-cache", default=None, metavar="DIR", help="data/model/attack cache (default $MMRB_CACHE)")
    group.addoption("--mmrb-device", default="cpu", help="torch device")
    from benchmark.run.backends import DEFAULT_BACKEND, list_backends  # the backend files, listed: no Ray, no torch

    group.addoption("--mmrb-backend", default=DEFAULT_BACKEND, choices=list_backends(),
                    help=f"where the cells run: {', '.join(list_backends())} (default {DEFAULT_BACKEND}; ray: as Ray "
                    "tasks on a local Ray instance, or --mmrb-address)")
    group.addoption("--mmrb-address", default=None, help="Ray cluster for --mmrb-backend ray (default $RAY_ADDRESS, "
                    "else a local instance)")
    group.addoption("--mmrb-speed", action="store_true",
                    help="also time every attack on 8 samples with pytest-benchmark (examples per second)")


SUITES = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    """Load and validate the gate's suites before collection: a bad suite is a usage error naming the field."""
    from benchmark.spec.suite import load_suite
    from mmrb.core.errors import MmrbError

    paths = [Path(p) for p in config.getoption("--mmrb-suite")] or [DEFAULT_SUITE]
    try:
        config.stash[SUITES] = [load_suite(path) for path in paths]
    except MmrbError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The speed tests run only with --mmrb-speed; otherwise they are deselected (not reported as skipped)."""
    if config.getoption("--mmrb-speed"):
        return
    speed = [item for item in items if item.name.startswith("test_attack_speed")]
    if speed:
        config.hook.pytest_deselected(items=speed)
        items[:] = [item for item in items if item not in speed]


def gate_suites(config: pytest.Config) -> list:
    """The validated suites of this session (benchmark.spec.suite.Suite)."""
    return config.stash[SUITES]
