"""mmrb's base layer: what every other layer imports and which imports none of them (errors, file I/O, statistics,
provenance, the modalities, the version). `wrappers/` and `defenses/` (models), `benchmark/` (the benchmark) and
`mmrb.cli` build on it; the layers are checked by import-linter (`.importlinter`)."""
