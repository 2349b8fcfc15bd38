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
    default_seeds=3,
    headline=(
        "80 fine classes in 10 superclasses (siblings are hard true negatives): HCL vs SimCLR "
        "(official and tuned temperature) and DCL, 5-shot fine-class probe, paired over seeds; "
        "digits as the negative regime; the InfoGraph variant on generated graphs"
    ),
)
