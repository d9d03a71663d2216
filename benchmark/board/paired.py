"""Adjacent leaderboard entries compared by a paired test on the same samples and seeds (mmrb.core.paired): McNemar's
mid-p on the discordant decisions of the rank cell pooled over training seeds, Holm-adjusted over the family of
adjacent pairs of one protocol version, and the bootstrap over seeds × samples: two entries are separable when both
reject. The page states the smallest difference the protocol can detect."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrb.core.paired import Paired, detectable_difference, holm, paired_test

ALPHA = 0.05


@dataclass(frozen=True)
class AdjacentTest:
    """The paired test of an entry against the entry ranked directly above it."""

    result: Paired
    p_holm: float

    @property
    def separable(self) -> bool:
        """Both tests reject: McNemar (Holm-adjusted) and the bootstrap over seeds × samples. McNemar alone treats a
        sample's decisions under different seeds as independent pairs, which overstates the evidence when the
        samples, not the seeds, carry the variation; the bootstrap resamples samples and seeds."""
        return self.p_holm < ALPHA and self.result.p_bootstrap < ALPHA

    @property
    def title(self) -> str:
        r = self.result
        return (f"paired test vs the model above: difference {100 * r.difference:+.1f} points "
                f"(95 % bootstrap {100 * r.ci_low:+.1f} to {100 * r.ci_high:+.1f}), McNemar mid-p {r.p_mid:.3g}, "
                f"Holm {self.p_holm:.3g}; {r.a_only}/{r.b_only} discordant")


def decisions(entry: dict[str, Any]) -> tuple[str, np.ndarray] | None:
    """(samples digest, (seeds, samples) booleans of the rank cell) of an entry with evidence, else None."""
    evidence = entry.get("evidence") or {}
    per_seed = evidence.get("rank_correct") or {}
    if not per_seed:
        return None
    rows = [np.frombuffer(per_seed[s].encode(), dtype=np.uint8) == ord("1") for s in sorted(per_seed)]
    return f"{evidence.get('samples')}:{','.join(sorted(per_seed))}", np.stack(rows)


def adjacent_tests(scored: list[dict[str, Any]]) -> list[AdjacentTest | None]:
    """Per position the Holm-adjusted paired test against the entry above (None: first, or no common evidence)."""
    results: list[Paired | None] = [None]
    for above, below in zip(scored, scored[1:]):
        a, b = decisions(above), decisions(below)
        same = a is not None and b is not None and a[0] == b[0] and a[1].shape == b[1].shape
        results.append(paired_test(a[1], b[1]) if same else None)
    tested = [i for i, r in enumerate(results) if r is not None]
    adjusted = dict(zip(tested, holm([results[i].p_mid for i in tested]))) if tested else {}
    return [AdjacentTest(r, adjusted[i]) if r is not None else None for i, r in enumerate(results)]


def detectable_sentence(tests: list[AdjacentTest | None], entries: list[dict[str, Any]]) -> str:
    """What the protocol can separate: the smallest accuracy difference McNemar detects (80 % power, α = 0.05) at
    the discordance seen between adjacent entries."""
    found = [decisions(e) for e in entries]
    shapes = [d[1].shape for d in found if d is not None]
    if not shapes:
        return ""
    seeds, n = shapes[0]
    tested = [t.result for t in tests if t is not None]
    discordance = float(np.mean([(r.a_only + r.b_only) / (seeds * n) for r in tested])) if tested else 0.2
    smallest = detectable_difference(n, seeds, max(discordance, 1e-3))
    return (f"Adjacent models are compared by paired tests (McNemar mid-p on the {n} test samples × {seeds} seeds, "
            f"Holm-adjusted, and a bootstrap over seeds × samples); at the discordance seen here "
            f"({100 * discordance:.0f} % of decisions) the smallest difference McNemar detects with 80 % power at "
            f"α = 0.05 is {100 * smallest:.1f} points of robust accuracy.")
