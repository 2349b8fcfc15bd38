"""papershelf.fair_mixup: Fair Mixup, fairness via interpolation (Chuang & Mroueh, ICLR 2021).

Penalties that plug into any torch training loop (input and manifold fair mixup for
demographic parity and equalized odds, GapReg, an adversarial-debiasing baseline), the soft
fairness gaps and average precision, the UCI Adult data encoded as in the paper (vendored,
CC BY 4.0), and a training helper that follows the official protocol.

Reference: https://arxiv.org/abs/2103.06503
"""

from papershelf.fair_mixup.celeba import (
    CelebAAttributes,
    CelebAImages,
    CelebAModel,
    evaluate_celeba,
    read_celeba_attributes,
    train_celeba,
)
from papershelf.fair_mixup.datasets import AdultSplits, AdultTable, load_adult, read_adult
from papershelf.fair_mixup.metrics import (
    average_precision,
    demographic_parity_gap,
    equalized_odds_gap,
)
from papershelf.fair_mixup.penalties import (
    AdversarialDebiasing,
    dp_mixup_penalty,
    eo_mixup_penalty,
    gap_reg_penalty,
    manifold_mixup_penalty,
    mixup_path_penalty,
    path_derivatives,
    sample_t,
)
from papershelf.fair_mixup.training import (
    AdultMLP,
    GroupBatchSampler,
    SweepRun,
    TrainResult,
    evaluate,
    sweep,
    train,
    train_step,
)

__version__ = "0.1.0"

__all__ = [
    "AdultMLP",
    "AdultSplits",
    "AdultTable",
    "AdversarialDebiasing",
    "CelebAAttributes",
    "CelebAImages",
    "CelebAModel",
    "GroupBatchSampler",
    "SweepRun",
    "TrainResult",
    "__version__",
    "average_precision",
    "demographic_parity_gap",
    "dp_mixup_penalty",
    "eo_mixup_penalty",
    "equalized_odds_gap",
    "evaluate",
    "evaluate_celeba",
    "gap_reg_penalty",
    "load_adult",
    "manifold_mixup_penalty",
    "mixup_path_penalty",
    "path_derivatives",
    "read_adult",
    "read_celeba_attributes",
    "sample_t",
    "sweep",
    "train",
    "train_celeba",
    "train_step",
]
