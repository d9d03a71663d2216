"""What a run's rows mean: metrics, aggregates over seeds, tables, soundness flags, baselines, the clinical operating
point, modality reliance, corruption summaries, evidence samples, costs and the defense table. Pure functions on
rows and arrays; no attack runs here."""
