"""`mmrb compare-defenses --backend ray`: the shipped smoke suite gives the local backend's rows (each backend from
its own empty cache: the Ray tasks pre-train their own CLIPs), a comparison resumes across backends without
recomputing a committed unit, and a unit that raises in a Ray task is named, the units before it kept."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.run.backends import RayBackend
from benchmark.store.results import CellStore
from benchmark.studies.defenses import compare_defenses, load_defense_suite
from benchmark.studies.defenses.corpora import grid
from benchmark.studies.defenses.study import run_study
from mmrb.cli import main
from mmrb.core.errors import MmrbError

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[2]
SMOKE_PATH = ROOT / "suites" / "defenses_smoke.yaml"
SMOKE = SMOKE_PATH.read_text()

# the whole smoke suite twice, then smaller ones on a local 2-CPU Ray instance (~4 min on 2 cores): `-m e2e`
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def ray_backend() -> RayBackend:
    return RayBackend(local_cpus=2, num_cpus=1)


def timeless(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows without their timings (the only columns that may differ between two runs)."""
    return frame.drop(columns=[c for c in frame.columns if c.endswith("seconds")])


def small_suite(tmp_path: Path, name: str, seeds: str = "[0, 1]", defenses: str = "[lp, ran]") -> Path:
    """The smoke suite with fewer defenses, no attacks (its CLIPs: the smoke suite's, cached)."""
    text = SMOKE.replace("seeds: [0, 1]", f"seeds: {seeds}")
    text = text.replace("defenses: [lp, mlp, nmtune, ran, {name: ran, label: ran_centroids, params: "
                        "{learned_centroids: true}}]", f"defenses: {defenses}")
    text = text[:text.index("attacks:")] + "attacks: []\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def ray_cache(tmp_path_factory) -> Path:
    """The Ray run's cache (its CLIPs, pre-trained in Ray tasks), reused by the smaller suites below."""
    return tmp_path_factory.mktemp("ray-cache")


@pytest.fixture(scope="module")
def smoke_ray(tmp_path_factory, ray_cache) -> Path:
    """The smoke suite through the CLI on Ray; its run folder."""
    out = tmp_path_factory.mktemp("ray") / "out"
    main(["compare-defenses", str(SMOKE_PATH), "--out", str(out), "--cache", str(ray_cache), "-q", "--backend", "ray",
          "--local-cpus", "2", "--num-cpus", "1"])
    return out


def test_the_smoke_suite_on_ray_gives_the_local_rows(tmp_path, smoke_ray, ray_cache):
    suite = load_defense_suite(SMOKE_PATH)
    local = compare_defenses(suite, tmp_path / "local", tmp_path / "cache", progress=False, base=SMOKE_PATH.parent)
    units = len(suite.seeds) * len(grid(suite)) * len(suite.defenses)
    assert local.drop_duplicates(["seed", "noise", "ratio", "method"]).shape[0] == units
    assert {"fit_seconds", "attack_seconds"} <= set(local.columns)
    columns = list(local.columns)  # results.csv: the rows, then the run's metadata (backend, date, ...)
    on_ray = pd.read_csv(smoke_ray / "results.csv")[columns]
    pd.testing.assert_frame_equal(timeless(on_ray), timeless(pd.read_csv(tmp_path / "local" / "results.csv")[columns]),
                                  check_exact=True)
    meta = json.loads((smoke_ray / "provenance.json").read_text())
    assert meta["computed"] == units and meta["loaded"] == 0
    assert meta["backend"].startswith("Ray backend on a local Ray instance (2 CPUs)")
    assert json.loads((tmp_path / "local" / "provenance.json").read_text())["backend"] == "local backend"
    # each seed's general CLIP and its CLIPs per (noise, γ) pre-trained once into the shared cache, no leftovers
    clips = sorted(p.name for p in (ray_cache / "clip" / "pretrained").iterdir())
    assert len(clips) == len(suite.seeds) * len(grid(suite)) + len(suite.seeds), clips
    assert not [c for c in clips if ".tmp" in c]


def test_a_comparison_resumes_on_ray_without_recomputing_committed_units(tmp_path, smoke_ray, ray_cache):
    out = tmp_path / "out"
    first = load_defense_suite(small_suite(tmp_path, "one_seed", seeds="[0]"))
    _, meta = run_study(first, out, ray_cache, progress=False)  # the local backend: seed 0's units
    per_seed = len(grid(first)) * len(first.defenses)
    assert (meta["computed"], meta["loaded"]) == (per_seed, 0)
    with CellStore(out) as store:
        before = store.run_ids()
    both = load_defense_suite(small_suite(tmp_path, "two_seeds"))
    frame, meta = run_study(both, out, ray_cache, progress=False, backend=ray_backend())
    assert (meta["computed"], meta["loaded"]) == (per_seed, per_seed)
    assert meta["backend"].startswith("Ray backend")
    with CellStore(out) as store:
        after = store.run_ids()
    assert len(after) == 2 * per_seed and {k: after[k] for k in before} == before, "a committed unit was recomputed"
    assert sorted(frame["seed"].unique()) == [0, 1]


FLAKY = '''
from defenses.heads import DefenseHead


class Flaky(DefenseHead):
    """Answers (the pre-flight check passes) but cannot be trained."""

    def transform(self, features):
        if self.training:
            raise RuntimeError("flaky head: cannot train")
        return features
'''


def test_a_unit_failing_in_a_ray_task_is_named_and_the_units_before_it_stay(tmp_path, smoke_ray, ray_cache):
    (tmp_path / "flaky.py").write_text(FLAKY)
    suite = load_defense_suite(small_suite(tmp_path, "flaky", seeds="[0]", defenses="[lp, flaky.py:Flaky]"))
    out = tmp_path / "out"
    with pytest.raises(MmrbError, match=r"seed 0, noise \w+ γ=[0-9.]+, defense Flaky failed in a Ray task: "
                                        r"RuntimeError: flaky head: cannot train .*committed in"):
        run_study(suite, out, ray_cache, progress=False, base=tmp_path, backend=ray_backend())
    with CellStore(out) as store:
        kept = [row for stored in store.rows(list(store.run_ids())) for row in stored["rows"]]
    assert kept and {r["method"] for r in kept} == {"lp"}  # lp ran before Flaky in the failed task: committed
