"""Adjacent leaderboard entries compared by a paired test on the same samples and seeds (mmrb.core.paired): McNemar
clustered by test sample (a sample's decisions under the training seeds are one cluster, not independent pairs) and
the bootstrap over seeds × samples, each Holm-adjusted over the family of adjacent pairs of one protocol version: two
entries are separable when both reject. The page states the smallest difference the protocol can detect, at the
family's strictest level."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrb.core.paired import Decision, family, paired_test

ALPHA = 0.05


@dataclass(frozen=True)
class AdjacentTest:
    """The paired test of an entry against the entry ranked directly above it."""

    decision: Decision

    @property
    def result(self):
        return self.decision.result

    @property
    def p_holm(self) -> float:
        return self.decision.p

    @property
    def separable(self) -> bool:
        """Both Holm-adjusted tests reject: McNemar clustered by sample and the bootstrap over seeds × samples."""
        return self.decision.separable

    @property
    def title(self) -> str:
        r, d = self.result, self.decision
        return (f"paired test vs the model above: difference {100 * r.difference:+.1f} points "
                f"(95 % bootstrap {100 * r.ci_low:+.1f} to {100 * r.ci_high:+.1f}), Holm-adjusted p: McNemar clustered "
                f"by sample {d.p_holm:.3g}, bootstrap {d.p_holm_bootstrap:.3g}; {r.a_only}/{r.b_only} discordant "
                f"(seed, sample) pairs on {r.discordant_samples} samples")


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
    results: list = [None]
    for above, below in zip(scored, scored[1:]):
        a, b = decisions(above), decisions(below)
        same = a is not None and b is not None and a[0] == b[0] and a[1].shape == b[1].shape
        results.append(paired_test(a[1], b[1]) if same else None)
    tested = [i for i, r in enumerate(results) if r is not None]
    decided = dict(zip(tested, family([results[i] for i in tested], ALPHA)))
    return [AdjacentTest(decided[i]) if i in decided else None for i in range(len(results))]


def detectable_sentence(tests: list[AdjacentTest | None], entries: list[dict[str, Any]]) -> str:
    """What the protocol can separate: the largest minimal detectable difference (80 % power) over the adjacent
    comparisons, at α/m (m adjacent pairs, the strictest level of Holm's correction), from the bootstrap over seeds ×
    samples."""
    found = [decisions(e) for e in entries]
    shapes = [d[1].shape for d in found if d is not None]
    tested = [t.decision for t in tests if t is not None]
    if not shapes or not tested:
        return ""
    seeds, n = shapes[0]
    smallest = max(d.mdd for d in tested)
    return (f"Adjacent models are compared by paired tests on the {n} test samples × {seeds} training seeds: McNemar "
            f"clustered by sample and a bootstrap over seeds × samples, each Holm-adjusted over the {len(tested)} "
            f"adjacent pairs; separable only when both reject. The smallest difference these comparisons detect with "
            f"80 % power at α = {ALPHA:g}/{len(tested)} is {100 * smallest:.1f} points of robust accuracy (the largest "
            f"over the pairs).")
