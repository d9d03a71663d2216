"""The backend registry: a new backend is one file, which the CLI, the gate and `backend_from` then offer and use;
the registry itself loads no Ray and no torch; an unknown name is refused naming the closest."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import benchmark.run.backends as backends
from benchmark.run.backends import BackendSettings, backend_from, list_backends, register_backend
from mmrb.core.errors import MmrbError

ROOT = Path(__file__).resolve().parents[2]

#: A backend in one file: the cells in reverse grid order, in this process, through the same cell engine.
TOY = '''
from __future__ import annotations

from dataclasses import dataclass

from benchmark.run.backends import register_backend
from benchmark.run.engine import compute
from mmrb.core.errors import MmrbError

SEEN = []  # the cell keys this backend computed, in its order


@register_backend("toy")
@dataclass(frozen=True)
class ToyBackend:
    retries: int = 0

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.max_retries)

    def check(self, device):
        if device != "cpu":
            raise MmrbError(f"the toy backend runs on the CPU, not {device}")

    def describe(self):
        return f"toy backend, {self.retries} retries, cells in reverse"

    def execute(self, plan, pending, progress):
        work = plan.work()
        for cell, key in reversed(pending):
            SEEN.append(key)
            yield compute(work, cell, key)
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """`toy.py` as one more file of the backends package (its folder added to the package's path), and the module
    it becomes once imported; the registry is restored afterwards."""
    folder = tmp_path / "backends"
    folder.mkdir()
    (folder / "toy.py").write_text(TOY)
    monkeypatch.setattr(backends, "__path__", [*backends.__path__, str(folder)])
    monkeypatch.setattr(backends, "_BACKENDS", dict(backends._BACKENDS))
    name = f"{backends.__name__}.toy"
    yield lambda: sys.modules[name]
    sys.modules.pop(name, None)
    vars(backends).pop("toy", None)


def test_the_registry_and_the_parser_load_no_ray_and_no_torch():
    code = ("import json, sys, mmrb.cli; from benchmark.run.backends import list_backends; "
            "mmrb.cli.build_parser(); print(json.dumps([list_backends(), "
            "sorted(m for m in ('ray', 'torch') if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [["local", "ray"], []]


def test_a_new_backend_file_is_listed_offered_and_built(toy):
    from benchmark.conftest import pytest_addoption
    from mmrb.cli import build_parser

    assert "toy" not in backends._BACKENDS  # listed from its file, not imported
    assert list_backends() == ["local", "ray", "toy"]
    assert build_parser().parse_args(["run", "suite.yaml", "--backend", "toy"]).backend == "toy"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "suite.yaml", "--backend", "toys"])
    gate = _GateOptions()
    pytest_addoption(gate)
    assert list(gate.options["--mmrb-backend"]["choices"]) == ["local", "ray", "toy"]
    backend = backend_from("toy", max_retries=5)
    assert type(backend) is toy().ToyBackend and backend.retries == 5
    with pytest.raises(MmrbError, match="the toy backend runs on the CPU, not cuda"):
        backend.check("cuda")


def test_mmrb_run_computes_the_cells_on_a_new_backend(toy, tmp_path, capsys):
    """`mmrb run --backend toy`: the one-file backend computes every cell (in its own order) and the driver commits
    them as from any backend."""
    from mmrb.cli import main
    from tests.plugins.tiny_plugin import tiny_suite, write_plugin

    plugin = write_plugin(tmp_path, "toy_backend_model", "toy_backend_model")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(models=["toy_backend_model"], plugins=[str(plugin)], seeds=[0, 1],
                                               attacks=[{"name": "none"}])))
    main(["run", str(suite), "--backend", "toy", "--max-retries", "2", "--out", str(tmp_path / "out"),
          "--cache", str(tmp_path / "cache"), "--no-leaderboard"])
    assert "toy backend, 2 retries, cells in reverse" in capsys.readouterr().err
    frame = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False)
    assert len(toy().SEEN) == len(frame) == 2 and not frame["error"].astype(bool).any()


def test_a_backend_registered_from_a_plugin_module_is_offered(monkeypatch):
    monkeypatch.setattr(backends, "_BACKENDS", dict(backends._BACKENDS))

    @register_backend("elsewhere")
    class Elsewhere:  # no from_settings: built with no arguments
        def check(self, device): ...

    assert "elsewhere" in list_backends()
    assert isinstance(backend_from("elsewhere"), Elsewhere)


def test_an_unknown_backend_names_the_closest():
    with pytest.raises(MmrbError, match=r"(?i)unknown backend 'rey'.*did you mean ray\?.*local, ray"):
        backend_from("rey")
    with pytest.raises(MmrbError, match="--address: Ray settings; add --backend ray"):
        backend_from("local", address="auto")
    assert backend_from("local", torch_threads=2) == backends.LocalBackend(2)
    assert backend_from("ray", "auto", 2.0, 1.0, 3, 1, None) == backends.RayBackend("auto", 2.0, 1.0, 3, 1)
    assert BackendSettings().max_retries == backends.RayBackend().max_retries  # the CLI's defaults are the class's


class _GateOptions:
    """A stand-in for pytest's parser: records the options the gate's conftest adds."""

    def __init__(self) -> None:
        self.options: dict[str, dict] = {}

    def getgroup(self, *args):
        return self

    def addoption(self, name: str, **kwargs) -> None:
        self.options[name] = kwargs
