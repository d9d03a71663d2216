"""The Ray backend: the same results as the local backend (models trained and cells attacked as Ray tasks on a
local 2-CPU instance with 1 torch thread per task, the local run with 2 threads, each from its own empty cache),
and a Ray worker killed mid-suite loses and duplicates no cell."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.api import evaluate
from benchmark.run.backends import LocalBackend, RayBackend, backend_from
from benchmark.store.results import RunStore
from mmrb.core.errors import MmrbError

FGSM = {"source": "art", "name": "FastGradientMethod", "label": "FGSM"}
SUITE = {
    "name": "ray",
    "dataset": {"name": "indiana_synth", "n": 120, "seed": 1, "image_size": 32},
    "models": ["vision_only", "early_fusion", "late_fusion"],
    "attacks": [{"name": "none"}, FGSM,
                {"source": "art", "name": "ProjectedGradientDescent", "label": "PGD", "params": {"max_iter": 20}},
                {"name": "worst_case", "label": "worst", "params": {"of": ["FGSM", "PGD"]}}],
    "epsilons": [0.0313725],
    "seeds": [0, 1],
    "limit": 24,
    "convergence_check": False,
    # one craft on vision_only shared by two targets
    "transfer": {"sources": ["vision_only"], "targets": ["early_fusion", "late_fusion"], "attacks": [FGSM],
                 "epsilons": [0.0313725]},
}
N_CELLS = 2 * (3 * 4 + 2)  # seeds × (models × attacks + transfer targets)

pytestmark = pytest.mark.e2e  # the Ray backend end to end: a cluster per module (README: `-m e2e`)


def scores(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["seconds"])


#: The local runs' torch threads: torch's default on a 2-core machine, whatever the environment sets (each Ray task
#: has 1): the models are trained under the canonical setting and the attacks give the same figures at either.
LOCAL_THREADS = 2


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The suite on the local backend with 2 torch threads, from its own empty cache (the Ray run trains its own)."""
    root = tmp_path_factory.mktemp("local")
    return evaluate(SUITE, out=root / "out", cache=root / "cache", backend=LocalBackend(torch_threads=LOCAL_THREADS))


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    evaluation = evaluate(SUITE, out=root / "out", cache=root / "cache", backend=RayBackend(local_cpus=2))
    return evaluation, root


@pytest.mark.slow
def test_ray_backend_gives_the_local_backends_results(local_run, ray_run):
    evaluation, root = ray_run
    assert len(local_run.frame) == len(evaluation.frame) == N_CELLS
    assert not evaluation.frame["error"].fillna("").astype(bool).any()
    pd.testing.assert_frame_equal(scores(evaluation.frame), scores(local_run.frame), check_exact=True)
    # not a vacuous equality: these tiny models mostly predict the majority class, but PGD lowers the AUC (a
    # function of the class probabilities, equal to the last bit on both) in every seed, and accuracy in some cell,
    # so both backends trained the same models and attacked them the same way
    pgd = evaluation.frame[evaluation.frame.attack == "PGD"]
    assert (pgd.robust_auc < pgd.auc).groupby(pgd.seed).any().all()
    assert (pgd.robust_accuracy < pgd.clean_accuracy).any()
    # every model trained once into the shared cache: one folder per (model, seed), no half-written leftovers
    models = sorted(p.name.rsplit("-", 1)[0] for p in (root / "cache" / "models").iterdir())
    assert models == sorted(["early_fusion", "late_fusion", "text_only", "vision_only"] * 2)
    # a re-run resumes every cell from the run store
    again = evaluate(SUITE, out=root / "out", cache=root / "cache", backend=RayBackend(local_cpus=2))
    assert again.record.computed == 0 and len(again.frame) == N_CELLS


@pytest.mark.slow
def test_mmrb_run_backend_ray_from_the_command_line(local_run, ray_run, tmp_path, capsys):
    import yaml

    from mmrb.cli import main

    _, root = ray_run
    suite = tmp_path / "ray.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    main(["run", str(suite), "--backend", "ray", "--local-cpus", "2", "--out", str(tmp_path / "out"),
          "--cache", str(root / "cache"), "--no-leaderboard"])
    captured = capsys.readouterr()
    assert "Ray backend on a local Ray instance (2 CPUs): 1 CPU, 0 GPU and 1 torch thread(s) per task" in captured.err
    assert f"{N_CELLS} run now, {N_CELLS} of them loaded from the attack cache" in captured.out
    # one bar over every task: the cells, 6 trainings (3 models x 2 seeds) and 2 transfer crafts (1 per seed)
    assert f" {N_CELLS + 8}/{N_CELLS + 8} [" in captured.err
    pd.testing.assert_frame_equal(scores(pd.read_csv(tmp_path / "out" / "results.csv")), scores(local_run.frame))


def _kill_first_cell_task(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first Ray worker process seen executing a cell task (its title is `ray::mmrb-cell`)."""
    while not stop.is_set() and not killed:
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::mmrb-cell"):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.005)


@pytest.mark.slow
def test_killed_ray_worker_loses_and_duplicates_no_cell(local_run, ray_run, tmp_path):
    _, root = ray_run
    cache = tmp_path / "cache"  # the trained models of the first Ray run; no attack output, so every cell attacks
    shutil.copytree(root / "cache", cache, ignore=shutil.ignore_patterns("attacks"))
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_cell_task, args=(killed, stop), daemon=True)
    killer.start()
    try:
        evaluation = evaluate(SUITE, out=tmp_path / "out", cache=cache, backend=RayBackend(local_cpus=2, max_retries=2))
    finally:
        stop.set()
        killer.join()
    assert killed, "no cell task was seen running"
    assert evaluation.record.loaded < N_CELLS  # the cells were attacked in this run, not loaded
    frame = evaluation.frame
    assert not frame["error"].fillna("").astype(bool).any(), frame["error"].tolist()
    assert len(frame) == N_CELLS
    assert not frame.duplicated(["model", "attack", "epsilon", "seed", "transfer_source"]).any()
    with RunStore(tmp_path / "out") as store:
        assert len(store.run_ids()) == N_CELLS
    pd.testing.assert_frame_equal(scores(frame), scores(local_run.frame))


def test_backend_settings_are_checked_before_any_work():
    with pytest.raises(MmrbError, match="--num-gpus"):
        RayBackend().check("cuda")
    with pytest.raises(MmrbError, match="give --device cuda; Ray assigns each task its GPU"):
        RayBackend(num_gpus=1).check("cuda:1")
    with pytest.raises(MmrbError, match="add --device cuda"):
        RayBackend(num_gpus=1).check("cpu")
    with pytest.raises(MmrbError, match="num_cpus must be > 0"):
        RayBackend(num_cpus=0).check("cpu")
    with pytest.raises(MmrbError, match="--address: Ray settings; add --backend ray"):
        backend_from("local", address="auto")
    with pytest.raises(MmrbError, match="unknown backend .dask.*local, ray"):
        backend_from("dask")


@pytest.mark.slow
def test_plugins_and_model_objects_run_on_ray(tmp_path):
    """Ray workers rebuild the driver's registry: a suite's `plugins:` file, a 'file.py:object' reference and a
    model object handed to evaluate() give the local backend's results."""
    from tests.plugins.tiny_plugin import tiny_suite, write_plugin
    from wrappers.registry import import_plugin

    plugin = write_plugin(tmp_path, "plug_ray", "plug_ray_model")
    # its training fails (its forward passes the check before work, in eval mode): the same error rows on both
    broken = write_plugin(tmp_path, "broken", "broken_model")
    broken.write_text(broken.read_text().replace(
        "def forward(self, images, text):",
        "def forward(self, images, text):\n        if self.training:\n            raise RuntimeError('broken on purpose')"))
    module = import_plugin(str(write_plugin(tmp_path, "plug_ray_obj", "plug_ray_obj_model")))
    import torch

    torch.manual_seed(0)
    given = module.make()
    suite = tiny_suite(plugins=[str(plugin)], models=["plug_ray_model", f"{plugin}:annotated", f"{broken}:annotated"])
    frames = [evaluate(suite, {"mine": given}, trained=False, out=tmp_path / name, cache=tmp_path / f"cache-{name}",
                       backend=backend).frame
              for name, backend in (("local", LocalBackend(torch_threads=LOCAL_THREADS)), ("ray", RayBackend(local_cpus=2)))]
    assert set(frames[1].model) == {"plug_ray_model", f"{plugin}:annotated", f"{broken}:annotated", "mine"}
    errors = frames[1].set_index("model")["error"].fillna("")
    assert (errors.drop(f"{broken}:annotated") == "").all(), errors.tolist()
    assert errors[f"{broken}:annotated"].str.contains("broken on purpose").all()
    pd.testing.assert_frame_equal(scores(frames[1]), scores(frames[0]))


@pytest.mark.slow
def test_killed_driver_loses_no_committed_cell_and_the_rerun_resumes(ray_run, tmp_path):
    """SIGKILL `mmrb run --backend ray` itself (the driver, which alone writes the store) mid-suite: the cells it
    committed stay, the same command resumes and commits each remaining cell once."""
    import yaml

    from tests.benchmark.test_run_store import kill_then_resume

    _, root = ray_run
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache, ignore=shutil.ignore_patterns("attacks"))
    suite = tmp_path / "ray.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    out = tmp_path / "out"
    args = ("run", str(suite), "--out", str(out), "--cache", str(cache), "--no-leaderboard", "-q", "--backend", "ray",
            "--local-cpus", "2")
    instance: list[int] = []  # the local Ray instance the driver started
    try:
        kill_then_resume(args, out, 3, N_CELLS, before_kill=lambda pid: instance.extend(_descendants(pid)))
        frame = pd.read_csv(out / "results.csv")
        assert not frame.duplicated(["model", "attack", "epsilon", "seed", "transfer_source"]).any()
    finally:  # some of the killed driver's Ray processes outlive it (docs/ray.md: `ray stop`); end just those
        for pid in instance:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_a_ray_worker_with_other_numerics_than_the_driver_stops_naming_both():
    """The driver keys the run's models and cells with its numerics (device type, CPU instruction set, torch build);
    a worker whose own differ would cache its models and figures under keys that say otherwise."""
    from types import SimpleNamespace

    from benchmark.run.backends import WorkerContext
    from wrappers.numerics import numerics_identity

    driver = {**numerics_identity("cpu"), "cpu_capability": "NOT-THIS-CPU"}
    context = WorkerContext(b"", SimpleNamespace(attacks=[], transfer=None), "cpu", 1, [], [], driver)
    with pytest.raises(MmrbError, match="differ from the driver's .*NOT-THIS-CPU.*one CPU type and torch build"):
        context.setup()
