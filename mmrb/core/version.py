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
PROTOCOL_VERSION = "5"
