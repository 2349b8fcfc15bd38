"""Registry entry for ``papershelf reproduce hard-negatives`` (stdlib and papershelf.core only)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="hard-negatives",
    distribution="papershelf-hard-negatives",
    title="Contrastive Learning with Hard Negative Samples",
    authors="Joshua Robinson, Ching-Yao Chuang, Suvrit Sra, Stefanie Jegelka",
    venue="ICLR 2021",
    url="https://arxiv.org/abs/2010.04592",
    bibtex="""@inproceedings{robinson2021hard,
  title     = {Contrastive Learning with Hard Negative Samples},
  author    = {Robinson, Joshua and Chuang, Ching-Yao and Sra, Suvrit and Jegelka, Stefanie},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2021}
}
@inproceedings{chuang2020debiased,
  title     = {Debiased Contrastive Learning},
  author    = {Chuang, Ching-Yao and Robinson, Joshua and Yen-Chen, Lin and Torralba, Antonio and Jegelka, Stefanie},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2020}
}""",
    run="papershelf.hard_negatives.reproduce:run",
    headline=(
        "Digits SimCLR vs DCL vs HCL across beta, on all 10 digits and on 4 confusable digits "
        "(more false and harder negatives), 5-shot linear probe, paired over seeds"
    ),
)
