"""The architecture holds: suites load without torch, the import layers are respected, and a new attack is one file.

The layers are (lowest first) `mmrb.core` (errors, io, stats, provenance) → the models (`wrappers`, `defenses`) → the
benchmark (`benchmark`) → the CLI (`mmrb.cli`), with `mmrb` the public API re-exporting them lazily; the
contracts are in `.importlinter` and checked here with import-linter.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUN_SUITES = sorted(p.name for p in (ROOT / "suites").glob("*.yaml") if not p.name.startswith("defenses"))


def test_loading_and_validating_every_suite_leaves_torch_out():
    """Suite parsing (schema, model names, attack sources) imports no torch, no model library, no attack library."""
    code = textwrap.dedent(f"""
        import json, sys
        from benchmark.spec.suite import load_suite
        from benchmark.spec.grid import NEEDS
        for name in {RUN_SUITES!r}:
            load_suite("suites/" + name)
        print(json.dumps(sorted(m for m in ("torch", "transformers", "timm", "open_clip", "art", "torchattacks",
                                            "textattack") if m in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert RUN_SUITES and json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_base_layer_and_the_public_api_import_without_torch():
    code = ("import sys, mmrb, mmrb.core.errors, mmrb.core.io, mmrb.core.stats, mmrb.core.provenance; "
            "print('torch' in sys.modules, 'benchmark' in sys.modules, 'wrappers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_import_layers_hold():
    """import-linter's contracts (.importlinter): the base imports nothing of mmrb's, models never import the
    benchmark, the benchmark never imports the CLI."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    out = subprocess.run([lint, str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


TOY = '''
import numpy as np

from benchmark.attacks import Crafted
from mmrb import register_attack


@register_attack("toy_sign", params=("draws",))
def toy_sign(params, target, epsilon, seed):
    """Per sample the worst of `draws` random sign perturbations of size ε: a one-file attack."""
    rng = np.random.default_rng(seed)
    images = np.asarray(target.images)
    noise = rng.choice([-1.0, 1.0], size=images.shape).astype(images.dtype)
    return Crafted(np.clip(images + epsilon * noise, 0, 1), list(target.texts), 1, dict(params))
'''


@pytest.mark.slow
def test_a_new_attack_is_one_file(tmp_path, cache_dir):
    """The test writes one file and a suite naming it: the attack is validated, run, budget-checked and scored like any
    other, with no edit to mmrb; a misspelt parameter is refused before any work, naming the field."""
    import mmrb
    from benchmark.attacks import registry
    from mmrb.core.errors import MmrbError
    from tests.plugins.tiny_plugin import tiny_suite

    (tmp_path / "toy_attack.py").write_text(TOY)
    suite = tiny_suite(plugins=["toy_attack.py"], models=["early_fusion"],
                       attacks=[{"name": "none"}, {"source": "mmrb", "name": "toy_sign", "params": {"draws": 1}}])
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    frame = mmrb.evaluate(path, out=tmp_path / "run", cache=cache_dir).frame
    row = frame.set_index("attack").loc["toy_sign"]
    assert row.error in ("", None) or row.error != row.error  # no error (empty or NaN)
    assert row.max_perturbation <= 0.03 + 1e-6 and row.robust_accuracy <= 1.0
    assert "toy_attack" in registry.info("mmrb", "toy_sign").module

    bad = dict(suite, attacks=[{"source": "mmrb", "name": "toy_sign", "params": {"drawz": 1}}])
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(MmrbError, match=r"attacks\.0 \(toy_sign\)\.params\.drawz"):
        mmrb.evaluate(path, out=tmp_path / "run2", cache=cache_dir)
    assert not (tmp_path / "run2" / "results.csv").exists()


def test_every_attack_declares_its_traits_once():
    """The registry is the one list: the built-in mmrb attacks, each with a craft function in its own module."""
    from benchmark.attacks import registry

    names = registry.mmrb_attacks()
    assert {"none", "pgd", "standard", "joint", "worst_case", "random_noise", "image_replacement"} <= set(names)
    for name in names:  # (a plug-in's attack registered by another test lives in its own module)
        attack = registry.info("mmrb", name)
        assert attack.craft is not None and attack.module.startswith(("benchmark.attacks.", "mmrb_plugin_"))
    assert registry.info("mmrb", "image_replacement").probe == "floor" and not registry.info("mmrb", "image_replacement").bounded
    assert registry.info("art", "ProjectedGradientDescent").gradient
    assert registry.info("torchattacks", "Square").black_box
    assert registry.sources()[0] == "mmrb" and {"art", "torchattacks", "textattack"} <= set(registry.sources())


def test_the_traits_read_without_torch_are_the_registered_ones():
    """A suite reads what an attack perturbs and what it combines from the source text of its declaration (no attack
    module imported): for every built-in attack and library, that is what the imported declaration registers."""
    from benchmark.attacks import registry

    read = registry._builtin_declarations()
    builtin = [n for n in registry.mmrb_attacks() if registry.info("mmrb", n).module.startswith("benchmark.attacks.")]
    assert sorted(read) == sorted(builtin) and len(builtin) > 15
    for name in builtin:
        attack = registry.info("mmrb", name)
        assert read[name] == registry.Declaration(attack.modality, attack.combines), name
    for source in registry.sources()[1:]:
        assert registry._adapter_declaration(source) == registry.Declaration(registry.library(source).modality), source
    assert registry.combines("mmrb", "worst_case") == "of" and registry.combines("mmrb", "pgd") is None
    assert registry.info("textattack", "PWWS").modality == "text" and registry.info("art", "SquareAttack").modality == "image"


PACKAGES = ("mmrb", "benchmark", "wrappers", "defenses")
LINE_CAP = 400  # ../shared/STYLE.md: short modules; .ci/run enforces it through this test


def _import_graph() -> dict[str, set[str]]:
    """mmrb's own modules and the project modules each imports, anywhere in its file (function-level included)."""
    import grimp

    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def test_no_import_cycle_anywhere():
    """No module reaches itself through imports, counting the imports written inside functions (graphlib refuses a
    cycle and names it)."""
    import graphlib

    graph = _import_graph()
    assert len(graph) > 100 and any(graph.values())
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_cycle_check_can_fail():
    import graphlib

    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter({"a": {"b"}, "b": {"c"}, "c": {"a"}}).static_order())


def test_no_module_over_the_line_cap():
    """Every module of the product and of the tests stays under the style's 400 lines."""
    files = [p for top in (*PACKAGES, "tests", "scripts") for p in (ROOT / top).rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > LINE_CAP}
    assert len(files) > 150 and not long, f"over {LINE_CAP} lines: {long}"


BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, sys
    HEAVY = ("torch", "torchvision", "transformers", "timm", "open_clip", "art", "torchattacks", "textattack", "ray")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ImportError(f"{name} is blocked: the board must render without it")
    sys.meta_path.insert(0, Block())
""")


def test_the_board_renders_without_torch_or_the_run_driver(tmp_path):
    """Reading the published entries and rendering every page of the leaderboard works with torch (and every model
    or attack library, and Ray) made unimportable, and loads none of the run, attack or model modules."""
    board = tmp_path / "leaderboard"
    shutil.copytree(ROOT / "leaderboard", board, ignore=shutil.ignore_patterns("suites", "*.png"))
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import json
        from benchmark.board import build_board
        written = build_board({str(board)!r})
        loaded = sorted(m for m in sys.modules if m.startswith(("benchmark.run", "benchmark.attacks",
                        "benchmark.submission", "wrappers", "defenses")))
        print(json.dumps({{"written": len(written), "loaded": loaded}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["written"] >= 4 and result["loaded"] == []
    assert (board / "index.html").read_text() == (ROOT / "leaderboard" / "index.html").read_text()
    assert (board / "README.md").read_text() == (ROOT / "leaderboard" / "README.md").read_text()


def test_the_torch_block_is_real():
    out = subprocess.run([sys.executable, "-c", BLOCK_TORCH + "import torch"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and "blocked" in out.stderr
