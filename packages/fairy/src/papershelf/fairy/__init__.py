"""papershelf.fairy: Fairy, anchor-based cross-frame attention for fast instruction-guided video editing.

Wu et al., "Fairy: Fast Parallelized Instruction-Guided Video-to-Video Synthesis", CVPR 2024
(arXiv:2312.13834). Works with any diffusers InstructPix2Pix pipeline.
"""

from papershelf.fairy.anchors import select_anchors
from papershelf.fairy.attention import (
    AnchorAttentionState,
    AnchorAttnProcessor,
    anchor_attention,
    anchor_sdpa,
)
from papershelf.fairy.editor import FairyOutput, FairyVideoEditor
from papershelf.fairy.video import read_video, to_frames_tensor, write_video

__version__ = "0.1.0"

__all__ = [
    "AnchorAttentionState",
    "AnchorAttnProcessor",
    "FairyOutput",
    "FairyVideoEditor",
    "__version__",
    "anchor_attention",
    "anchor_sdpa",
    "read_video",
    "select_anchors",
    "to_frames_tensor",
    "write_video",
]
