"""gather_distributed=True on a 2-process gloo group equals one process on the concatenated batch."""

from __future__ import annotations

import pytest

from papershelf.core.testing import slow

# the 2-process gloo helper lives in the unpublished workspace member papershelf-contrastive-bench
testing = pytest.importorskip("papershelf.contrastive_bench.testing")

CONFIGS = [
    dict(q=0.5, lam=0.01, temperature=0.5, layout="simclr"),
    dict(q=0.1, lam=0.01, temperature=0.2, layout="cross"),
    dict(q=0.0, lam=1.0, temperature=0.5, layout="simclr"),
]


@slow  # two fresh interpreters importing torch: 10-40 s on a shared 2-core machine
def test_two_process_gloo_equals_single_process(tmp_path):
    testing.assert_gathered_loss_matches_single_process(
        "papershelf.robust_infonce:rince_loss", CONFIGS, tmp_path
    )
