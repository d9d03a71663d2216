"""Studies built on the run machinery: the defense comparison (`defenses`: CLIP heads under noisy pre-training, and
fusion-model defenses)."""
