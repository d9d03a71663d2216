"""Input defenses of a suite model (`defense:` on a model of a suite): ART's preprocessing defences on the image, a
canonicaliser on the report. One file per defense, its class decorated with `defenses.registry.input_defense`; no
file imports torch at module level (the registry imports them all to list the names a suite may use)."""
