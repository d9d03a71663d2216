"""How a randomised model (a randomised defense, or any model whose forward draws afresh) is attacked and scored:
one declaration, read by the attacks (defenses.adaptive), the scoring (wrappers.training.predict_proba) and the
flags that say so (benchmark.evaluation.soundness)."""

#: Forward passes averaged per attack step against a randomised model (EOT; at least 20, Athalye et al. 2018 use 30).
EOT_DRAWS = 20

#: Forward passes whose majority decides a randomised model's prediction (odd: two classes never tie).
SCORING_DRAWS = 21
