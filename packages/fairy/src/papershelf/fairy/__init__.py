"""papershelf.fairy: Fairy, anchor-based cross-frame attention for fast instruction-guided video editing.

Wu et al., "Fairy: Fast Parallelized Instruction-Guided Video-to-Video Synthesis", CVPR 2024
(arXiv:2312.13834). Works with any diffusers InstructPix2Pix pipeline.

The package's API is torch and diffusers; importing ``papershelf.fairy`` imports neither until
a name that needs them is used (PEP 562). The top level holds what a user needs first; the
rest lives in the submodules (``attention``, ``anchors``, ``video``, ``metrics``, ``augment``,
``train``, ``costs``, ``testing``, ``toy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

__version__ = "0.2.0"

# name -> submodule; the first block is the public top level (``__all__``), the second keeps
# the names of 0.1 importable from here
_LAZY = {
    "FairyPipeline": "pipeline",
    "FairyVideoEditor": "editor",
    "FairyOutput": "editor",
    "load_video": "video",
    "write_video": "video",
    "select_anchors": "anchors",
    "anchor_attention": "attention",
    # 0.1 names
    "AnchorAttentionState": "attention",
    "AnchorAttnProcessor": "attention",
    "anchor_sdpa": "attention",
    "read_video": "video",
    "to_frames_tensor": "video",
}

__all__ = [
    "FairyOutput",
    "FairyPipeline",
    "FairyVideoEditor",
    "__version__",
    "anchor_attention",
    "load_video",
    "select_anchors",
    "write_video",
]

if TYPE_CHECKING:  # pragma: no cover
    from papershelf.fairy.anchors import select_anchors
    from papershelf.fairy.attention import anchor_attention
    from papershelf.fairy.editor import FairyOutput, FairyVideoEditor
    from papershelf.fairy.pipeline import FairyPipeline
    from papershelf.fairy.video import load_video, write_video

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
