"""The soundness flags by name, and which of them unrank a model: declared once, read by the flag checks
(`benchmark.evaluation.soundness`) and by the board (which must not import the attack registry to read an entry)."""
from __future__ import annotations

FLAGS = ("rising_with_eps", "rising_with_steps", "black_box_stronger", "floor_not_reached",
         "library_disagreement", "masked_gradients", "masking_unresolved", "randomised_model", "noise_as_strong",
         "constant_prediction", "chance_level", "image_ignored")
#: Flags under which a model's rank figure cannot be trusted: the leaderboard lists it unranked, with the flag's detail.
UNRANKING_FLAGS = ("masking_unresolved", "constant_prediction", "chance_level")
#: Raised where a model's robust figure is explained by its no longer looking at the image (`image_ignored`): it does not
#: unrank (the figure is measured right), but every page shows it beside the figure, in these words.
BLIND_FLAG = "image_ignored"
BLIND_SAYS = "robust because the image no longer decides"
#: The largest share of decisions that replacing the image may change for a model to count as ignoring it (1 in 100).
BLIND_SHARE = 0.01
