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
