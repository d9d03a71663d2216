"""Input defenses of a suite model (`defense:` on a model of a suite): ART's preprocessing defences on the image, a
canonicaliser on the report. One file per defense; the names a suite may use are listed (without importing torch)
in `defenses.registry.MODEL_DEFENSES`."""
