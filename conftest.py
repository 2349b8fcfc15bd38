"""Workspace-wide pytest configuration: one thread, as on a busy 2-core machine."""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

try:
    import torch
except ImportError:  # members without torch are tested without it
    pass
else:
    torch.set_num_threads(1)
