"""Registry entry for ``papershelf reproduce fairy`` (stdlib + core only: no torch here)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="fairy",
    distribution="papershelf-fairy",
    title="Fairy: Fast Parallelized Instruction-Guided Video-to-Video Synthesis",
    authors=(
        "Bichen Wu, Ching-Yao Chuang, Xiaoyan Wang, Yichen Jia, Kapil Krishnakumar, Tong Xiao, "
        "Feng Liang, Licheng Yu, Peter Vajda"
    ),
    venue="CVPR 2024",
    url="https://arxiv.org/abs/2312.13834",
    bibtex="""@inproceedings{wu2024fairy,
  title     = {Fairy: Fast Parallelized Instruction-Guided Video-to-Video Synthesis},
  author    = {Wu, Bichen and Chuang, Ching-Yao and Wang, Xiaoyan and Jia, Yichen and
               Krishnakumar, Kapil and Xiao, Tong and Liang, Feng and Yu, Licheng and Vajda, Peter},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {8261--8270},
  year      = {2024}
}""",
    run="papershelf.fairy.reproduce:run",
    headline=(
        "anchor attention makes edits more temporally consistent than frame-wise editing "
        "(hand-built recolour edit model, interval over clips); chunked = all-at-once; cache "
        "and UNet batch constant in the number of frames"
    ),
)
