"""mmrb's version and the leaderboard protocol's version."""

__version__ = "0.1.0"

#: Bumped whenever a change makes new leaderboard numbers incomparable with old ones
#: (data rules, metric definitions, attack defaults). 2: training seeds with intervals, the convergence check,
#: per-class figures, the floor and soundness flags. 3: converged by construction — the escalating convergence check
#: (the converged figure published), the standard evaluation at AutoAttack's budget (cascaded, BPDA/EOT), the floor's
#: unbounded attack escalated, masking-flagged models unranked, outside evaluations.
#: 4: the clinical track — the corruption subset (mCE against vision_only), the operating point at 95 % specificity
#: and the rank cell's per-sample evidence (adjacent entries separated by a paired test).
#: 5: trained BatchNorm statistics recomputed on the training data after training (the image models of protocol 4
#: could predict one class in eval mode at some seeds), near-constant and chance-level models unranked.
#: 6: the joint attack is the rank attack's image part (the standard evaluation) run against the synonym-swapped
#: report, and the modality-reliance index is per sample — the share of (seed, sample) pairs only the joint attack
#: breaks, with a seeds × samples bootstrap interval; report corruptions are not text attacks; text attacks keep
#: the words that carry the label and every adversarial report is re-labelled (`label_kept`).
#: 7: intervals that stay in range (the two-level bootstrap over seeds × samples for every figure with per-sample
#: evidence, its seed part widened for few seeds), adjacent entries separated by McNemar clustered by sample and the
#: bootstrap, both Holm-adjusted; the targeted false-reassurance attack at the operating threshold; the radiographic
#: corruptions (quantum noise, motion blur, rotation, under-exposure) in the subset, report mCE against a text-only
#: entry; the protocol's own description written beside its entries.
PROTOCOL_VERSION = "7"
