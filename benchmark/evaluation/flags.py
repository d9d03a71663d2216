"""The soundness flags by name, and which of them unrank a model: declared once, read by the flag checks
(`benchmark.evaluation.soundness`) and by the board (which must not import the attack registry to read an entry)."""
from __future__ import annotations

FLAGS = ("rising_with_eps", "rising_with_steps", "black_box_stronger", "floor_not_reached",
         "library_disagreement", "masked_gradients", "masking_unresolved", "randomised_model", "noise_as_strong",
         "constant_prediction", "chance_level")
#: Flags under which a model's rank figure cannot be trusted: the leaderboard lists it unranked, with the flag's detail.
UNRANKING_FLAGS = ("masking_unresolved", "constant_prediction", "chance_level")
