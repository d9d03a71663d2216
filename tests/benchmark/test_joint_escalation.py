"""Joint attacks are escalated like image attacks (issue 37): the image part runs again on the survivors, stronger
each round, against the adversarial reports held fixed, so a joint cell's figure is converged by construction."""
from __future__ import annotations

import mmrb
from benchmark.run.engine import escalation_of
from benchmark.spec.suite import AttackSpec

EPS = 2 / 255  # at 8/255 the first joint run breaks every sample under some CPU kernels: nothing left to check
LIMIT = 40


def _joint(steps: int, label: str) -> dict:
    return {"source": "mmrb", "name": "joint", "label": label, "modality": "joint",
            "params": {"image": {"source": "art", "name": "ProjectedGradientDescent", "params": {"max_iter": steps}},
                       "text": {"name": "synonym_swap", "params": {"fraction": 0.2}}, "order": "text_first"}}


def test_what_each_joint_attack_escalates():
    joint = AttackSpec(**_joint(10, "j"))
    assert escalation_of(joint) == ("art", "ProjectedGradientDescent", {"max_iter": 10})
    co = AttackSpec(source="mmrb", name="co_attack", modality="joint", label="co", params={"steps": 20})
    assert escalation_of(co) == ("mmrb", "pgd", {"steps": 20, "random_start": True})
    text_only = AttackSpec(**{**_joint(10, "n"), "params": {**_joint(10, "n")["params"],
                                                           "image": {"name": "random_noise", "source": "mmrb"}}})
    assert escalation_of(text_only) is None


def test_a_joint_cell_is_escalated_and_a_four_times_longer_run_finds_at_most_one_more_sample(trained, indiana_root,
                                                                                           tmp_path):
    model = trained("early_fusion")
    suite = {"name": "joint_check", "dataset": {"name": "indiana", "path": str(indiana_root), "image_size": 32},
             "models": ["m"], "seeds": [0], "limit": LIMIT, "epsilons": [EPS],
             "attacks": [{"name": "none"}, _joint(10, "joint-10"), _joint(40, "joint-40")],
             "convergence_check": {"step_factor": 2, "restarts": 1, "min_rounds": 1, "max_rounds": 3}}
    frame = mmrb.evaluate(suite, {"m": model}, only_given=True, out=tmp_path / "out", cache=tmp_path / "cache").frame
    assert (frame["error"].fillna("") == "").all(), frame["error"].tolist()
    rows = frame.set_index("attack")
    short, long = rows.loc["joint-10"], rows.loc["joint-40"]
    assert short["check_rounds"] >= 1 and short["robust_accuracy"] <= short["as_run_robust_accuracy"]
    assert long["robust_accuracy"] >= short["robust_accuracy"] - 1 / LIMIT - 1e-9, (short, long)
    assert 0 < short["label_kept"] <= 1  # recorded for the joint attack's reports (share whose label the words keep)
