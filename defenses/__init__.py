"""Every defense mmrb knows, in one home, in two layers around the models (`.importlinter`):

- inside a model, below `wrappers`: `heads/` (fine-tuning heads on frozen features: LP, MLP, RAN, NMTune; their
  registry) and `input/` (input transforms: JPEG, smoothing, squeezing, noise, TVM, the report canonicaliser);
- acting on a model, above `wrappers`: `registry` (the defenses a suite model may carry, readable without torch),
  `defended` (a model behind its input defense), `adversarial_training` (PGD-AT, TRADES fine-tuning) and `adaptive`
  (how an attack sees through a defense: BPDA, EOT).

The benchmark's use of them sits in its own layers: the suite's `defense:` field (`benchmark.spec.defense`), the
adaptive evaluation of a defended cell (`benchmark.run.adaptive`), the defense table
(`benchmark.evaluation.defense_table`) and the defense comparison (`benchmark.studies.defenses`).
"""
