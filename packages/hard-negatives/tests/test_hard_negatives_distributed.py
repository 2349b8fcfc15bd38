"""gather_distributed=True on a 2-process gloo group equals one process on the concatenated batch."""

from __future__ import annotations

from papershelf.contrastive_bench.testing import assert_gathered_loss_matches_single_process
from papershelf.core.testing import slow

CONFIGS = [
    dict(beta=1.0, tau_plus=0.1, temperature=0.5),
    dict(beta=0.0, tau_plus=0.1, temperature=0.5),
    dict(beta=2.0, tau_plus=0.0, temperature=0.2, detach_weights=True),
    dict(temperature=0.5, estimator="easy"),
]


@slow  # two fresh interpreters importing torch: 10-40 s on a shared 2-core machine
def test_two_process_gloo_equals_single_process(tmp_path):
    assert_gathered_loss_matches_single_process(
        "papershelf.hard_negatives:hcl_loss", CONFIGS, tmp_path
    )
