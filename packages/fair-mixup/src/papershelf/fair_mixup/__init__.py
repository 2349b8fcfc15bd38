"""papershelf.fair_mixup: Fair Mixup, fairness via interpolation (Chuang & Mroueh, ICLR 2021).

Penalties that plug into any torch training loop (input and manifold fair mixup for
demographic parity and equalized odds, and the GapReg baseline), the soft fairness gaps, the
UCI Adult data encoded as in the paper (vendored, CC BY 4.0), and a training helper that
follows the official protocol. More in the submodules: :mod:`papershelf.fair_mixup.penalties`
(``mixup_path_penalty``, ``path_derivatives``, ``sample_t``, ``AdversarialDebiasing``),
:mod:`~papershelf.fair_mixup.metrics` (``average_precision``),
:mod:`~papershelf.fair_mixup.training` (``AdultMLP``, ``GroupBatchSampler``, ``train_step``,
``evaluate``, ``sweep``), :mod:`~papershelf.fair_mixup.datasets` (``read_adult``) and
:mod:`~papershelf.fair_mixup.celeba`.

The main API is torch; imports are lazy: ``import papershelf.fair_mixup`` loads no torch until
a name that needs it is used.

Reference: https://arxiv.org/abs/2103.06503
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

__version__ = "0.2.0"

__all__ = [
    "__version__",
    "demographic_parity_gap",
    "dp_mixup_penalty",
    "eo_mixup_penalty",
    "equalized_odds_gap",
    "gap_reg_penalty",
    "load_adult",
    "manifold_mixup_penalty",
    "train",
]

# every public name and its submodule (the first group is __all__; the rest stay importable
# from the top level for code written against 0.1)
_LAZY = {
    "demographic_parity_gap": "metrics",
    "dp_mixup_penalty": "penalties",
    "eo_mixup_penalty": "penalties",
    "equalized_odds_gap": "metrics",
    "gap_reg_penalty": "penalties",
    "load_adult": "datasets",
    "manifold_mixup_penalty": "penalties",
    "train": "training",
    "AdultMLP": "training",
    "AdultSplits": "datasets",
    "AdultTable": "datasets",
    "AdversarialDebiasing": "penalties",
    "CelebAAttributes": "celeba",
    "CelebAImages": "celeba",
    "CelebAModel": "celeba",
    "GroupBatchSampler": "training",
    "SweepRun": "training",
    "TrainResult": "training",
    "average_precision": "metrics",
    "evaluate": "training",
    "evaluate_celeba": "celeba",
    "mixup_path_penalty": "penalties",
    "path_derivatives": "penalties",
    "read_adult": "datasets",
    "read_celeba_attributes": "celeba",
    "sample_t": "penalties",
    "sweep": "training",
    "train_celeba": "celeba",
    "train_step": "training",
}

if TYPE_CHECKING:
    from papershelf.fair_mixup.celeba import CelebAAttributes as CelebAAttributes
    from papershelf.fair_mixup.celeba import CelebAImages as CelebAImages
    from papershelf.fair_mixup.celeba import CelebAModel as CelebAModel
    from papershelf.fair_mixup.celeba import evaluate_celeba as evaluate_celeba
    from papershelf.fair_mixup.celeba import read_celeba_attributes as read_celeba_attributes
    from papershelf.fair_mixup.celeba import train_celeba as train_celeba
    from papershelf.fair_mixup.datasets import AdultSplits as AdultSplits
    from papershelf.fair_mixup.datasets import AdultTable as AdultTable
    from papershelf.fair_mixup.datasets import load_adult as load_adult
    from papershelf.fair_mixup.datasets import read_adult as read_adult
    from papershelf.fair_mixup.metrics import average_precision as average_precision
    from papershelf.fair_mixup.metrics import demographic_parity_gap as demographic_parity_gap
    from papershelf.fair_mixup.metrics import equalized_odds_gap as equalized_odds_gap
    from papershelf.fair_mixup.penalties import AdversarialDebiasing as AdversarialDebiasing
    from papershelf.fair_mixup.penalties import dp_mixup_penalty as dp_mixup_penalty
    from papershelf.fair_mixup.penalties import eo_mixup_penalty as eo_mixup_penalty
    from papershelf.fair_mixup.penalties import gap_reg_penalty as gap_reg_penalty
    from papershelf.fair_mixup.penalties import manifold_mixup_penalty as manifold_mixup_penalty
    from papershelf.fair_mixup.penalties import mixup_path_penalty as mixup_path_penalty
    from papershelf.fair_mixup.penalties import path_derivatives as path_derivatives
    from papershelf.fair_mixup.penalties import sample_t as sample_t
    from papershelf.fair_mixup.training import AdultMLP as AdultMLP
    from papershelf.fair_mixup.training import GroupBatchSampler as GroupBatchSampler
    from papershelf.fair_mixup.training import SweepRun as SweepRun
    from papershelf.fair_mixup.training import TrainResult as TrainResult
    from papershelf.fair_mixup.training import evaluate as evaluate
    from papershelf.fair_mixup.training import sweep as sweep
    from papershelf.fair_mixup.training import train as train
    from papershelf.fair_mixup.training import train_step as train_step

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
