"""Registry entry for ``papershelf reproduce robust-infonce`` (stdlib and papershelf.core only)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="robust-infonce",
    distribution="papershelf-robust-infonce",
    title="Robust Contrastive Learning against Noisy Views",
    authors=(
        "Ching-Yao Chuang, R Devon Hjelm, Xin Wang, Vibhav Vineet, Neel Joshi, Antonio Torralba, "
        "Stefanie Jegelka, Yale Song"
    ),
    venue="CVPR 2022",
    url="https://arxiv.org/abs/2201.04309",
    bibtex="""@inproceedings{chuang2022robust,
  title     = {Robust Contrastive Learning against Noisy Views},
  author    = {Chuang, Ching-Yao and Hjelm, R Devon and Wang, Xin and Vineet, Vibhav and
               Joshi, Neel and Torralba, Antonio and Jegelka, Stefanie and Song, Yale},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {16670--16681},
  year      = {2022}
}""",
    run="papershelf.robust_infonce.reproduce:run",
    default_seeds=5,
    headline=(
        "Synthetic latent classes with 60% noisy views (pairs of different classes), where the "
        "noise hurts InfoNCE: RINCE q=0.5 minus InfoNCE, 5-shot probe, paired over seeds"
    ),
)
