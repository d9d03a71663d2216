"""What a run is asked to do: the suite schema (`suite`), its checks before any work (`validate`), its expansion into
cells (`grid`), the model catalogue (`catalogue`) and a suite model's `defense:` field (`defense`). No torch."""
