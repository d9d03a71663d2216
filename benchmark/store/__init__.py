"""Where results live: the run store (`results`: committed rows, results.csv; each row a `record.ResultRecord`) and
the attack cache (`artifacts`: what each cell crafted). Both are content-addressed by the keys of `benchmark.run.keys`."""
