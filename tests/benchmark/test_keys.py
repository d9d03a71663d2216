"""Cell keys miss nothing and nothing more: an attack's key follows the code it imports (at any depth, imports inside
functions too) and the user files its params name, and an edit elsewhere leaves it alone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from wrappers.cache import code_digest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("benchmark", "wrappers", "defenses", "mmrb")
ATTACKS = {"feature": ("mmrb", "feature_pgd"), "none": ("mmrb", "none"), "fgsm": ("art", "FastGradientMethod"),
           "sga": ("mmrb", "sga")}

#: Runs in the copied tree: prints where `benchmark` came from and each attack's code, then again after each line read.
DRIVER = textwrap.dedent(f"""
    import json, sys
    import benchmark, benchmark.run.keys as keys
    attacks = {ATTACKS!r}
    while True:
        keys._module_code.cache_clear()  # a fresh process would not have it: the files are read again
        codes = {{label: keys.attack_code(*attack) for label, attack in attacks.items()}}
        files = sorted({{m.__file__ for name, m in sys.modules.items()
                        if name.split(".")[0] in {PACKAGES!r} and getattr(m, "__file__", None)}})
        print(json.dumps({{"benchmark": benchmark.__file__, "files": files, "codes": codes}}), flush=True)
        if not sys.stdin.readline():
            break
""")


def _append(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(f"\n{line}\n")


def test_an_attack_key_follows_its_imports_and_only_them(tmp_path):
    """(a) the feature attack imports its target domain inside its craft function: an edit there re-keys it, not the
    clean row nor ART's FGSM; (b) an edit of another attack's file (sga) re-keys that attack only."""
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=tree, env=env, text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)

    def keys() -> dict:
        line = driver.stdout.readline()
        assert line, f"the driver stopped (exit {driver.poll()})"
        return json.loads(line)

    try:
        before = keys()
        assert Path(before["benchmark"]).is_relative_to(tree)
        assert before["files"] and all(Path(f).is_relative_to(tree) for f in before["files"]), before["files"]
        assert tree / "benchmark" / "data" / "synth_domains.py" not in map(Path, before["files"])  # imported only by craft

        _append(tree / "benchmark" / "data" / "synth_domains.py", "# an edit of the target domain")
        driver.stdin.write("again\n")
        driver.stdin.flush()
        domain = keys()
        _append(tree / "benchmark" / "attacks" / "sga.py", "# an edit of another attack")
        driver.stdin.write("again\n")
        driver.stdin.flush()
        sga = keys()
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)
    codes = [state["codes"] for state in (before, domain, sga)]
    assert codes[1]["feature"]["code"] != codes[0]["feature"]["code"]
    assert codes[1]["none"] == codes[0]["none"] and codes[1]["fgsm"] == codes[0]["fgsm"]
    assert codes[1]["sga"] == codes[0]["sga"]
    assert codes[2]["sga"]["code"] != codes[1]["sga"]["code"]
    assert {label: codes[2][label] for label in ("feature", "none", "fgsm")} == \
        {label: codes[1][label] for label in ("feature", "none", "fgsm")}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_code_digest_follows_imports_inside_functions_at_any_depth(tmp_path, monkeypatch):
    """(c) a module tree whose only links are imports inside functions, relative, `from pkg import submodule` and
    `import a.b.c`: an edit anywhere along them changes the digest, an edit of a module nobody imports does not."""
    package = "keytree_pkg"
    _write(tmp_path / package / "__init__.py", "")
    _write(tmp_path / package / "top.py", """
        def run():
            from . import near
            return near.value()
    """)
    _write(tmp_path / package / "near.py", """
        def value():
            from keytree_pkg.deep import leaf
            import keytree_pkg.other.inner
            return leaf.VALUE + keytree_pkg.other.inner.VALUE
    """)
    _write(tmp_path / package / "deep" / "__init__.py", "")
    _write(tmp_path / package / "deep" / "leaf.py", "VALUE = 1\n")
    _write(tmp_path / package / "other" / "__init__.py", "")
    _write(tmp_path / package / "other" / "inner.py", "VALUE = 2\n")
    _write(tmp_path / package / "unused.py", "VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from keytree_pkg import top

        assert top.run() == 3
        assert "keytree_pkg.deep.leaf" in sys.modules
        digests = [code_digest(top.run)]
        for edited in ("deep/leaf.py", "other/inner.py", "other/__init__.py", "deep/__init__.py", "near.py",
                       "unused.py"):
            _append(tmp_path / package / edited, "# edited")
            digests.append(code_digest(top.run))
        assert len(set(digests[:6])) == 6, digests  # each edit along the imports is seen
        assert digests[6] == digests[5]  # the module nobody imports is not
        assert code_digest(top.run) == digests[6]  # and the digest is stable
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == package]:
            del sys.modules[name]


def test_code_digest_follows_a_plugin_files_neighbours(tmp_path, monkeypatch):
    """A plug-in file (mmrb_plugin_*) that imports a file next to it inside a function: the neighbour is in the key."""
    from mmrb.core.plugins import import_plugin

    monkeypatch.setattr(sys, "path", list(sys.path))
    _write(tmp_path / "keytree_plugin.py", """
        def build():
            import keytree_helper
            return keytree_helper.SIZE
    """)
    _write(tmp_path / "keytree_helper.py", "SIZE = 4\n")
    module = import_plugin(str(tmp_path / "keytree_plugin.py"))
    try:
        assert module.__name__.startswith("mmrb_plugin_") and module.build() == 4
        before = code_digest(module.build)
        _append(tmp_path / "keytree_helper.py", "SIZE = 5")
        assert code_digest(module.build) != before
    finally:
        sys.modules.pop(module.__name__, None)
        sys.modules.pop("keytree_helper", None)


def test_a_user_file_named_by_the_params_is_in_the_key(tmp_path):
    """(d) the caption attack's rewriter file (its traits' `files`) and what that file imports: their bytes key it."""
    from benchmark.attacks.registry import info
    from benchmark.run.keys import attack_code

    assert info("mmrb", "caption_rewrite").files == ("rewriter",)
    _write(tmp_path / "keytree_rewriter.py", """
        def rewrite(caption, rng):
            from keytree_words import SWAP
            return caption.replace("left", SWAP)
    """)
    _write(tmp_path / "keytree_words.py", "SWAP = 'right'\n")
    params = {"rewriter": f"{tmp_path / 'keytree_rewriter.py'}:rewrite"}
    first = attack_code("mmrb", "caption_rewrite", params)
    assert first == attack_code("mmrb", "caption_rewrite", dict(params))
    assert first["code"] == attack_code("mmrb", "caption_rewrite")["code"]  # the attack's own code: the same
    assert "files" not in attack_code("mmrb", "caption_rewrite")
    _append(tmp_path / "keytree_rewriter.py", "# the rewriter edited")
    second = attack_code("mmrb", "caption_rewrite", params)
    assert second["files"] != first["files"] and second["code"] == first["code"]
    (tmp_path / "keytree_words.py").write_text("SWAP = 'lower'\n")  # what it imports; same size, same clock tick
    third = attack_code("mmrb", "caption_rewrite", params)
    assert third["files"] != second["files"]
    missing = attack_code("mmrb", "caption_rewrite", {"rewriter": f"{tmp_path / 'absent.py'}:rewrite"})
    assert missing["files"] == {"rewriter": ["missing"]}


def test_an_attack_that_crafts_others_is_keyed_by_their_code():
    """The joint attack's parts (its traits' `calls`) are in its key: another image attack, another key."""
    from benchmark.run.keys import attack_code

    text = {"source": "mmrb", "name": "synonym_swap"}
    art = attack_code("mmrb", "joint", {"image": {"source": "art", "name": "FastGradientMethod"}, "text": text})
    pgd = attack_code("mmrb", "joint", {"image": {"source": "mmrb", "name": "pgd"}, "text": text})
    assert art["calls"]["image"] == [attack_code("art", "FastGradientMethod")]
    assert pgd["calls"]["image"] == [attack_code("mmrb", "pgd")] and art["code"] == pgd["code"]
    assert art["calls"]["image"] != pgd["calls"]["image"]
