"""``FairyPipeline``: a diffusers pipeline that loads an InstructPix2Pix checkpoint and edits videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusers import StableDiffusionInstructPix2PixPipeline

from papershelf.fairy.editor import FairyOutput, FairyVideoEditor, check_instruct_pix2pix

__all__ = ["FairyPipeline"]


class FairyPipeline(StableDiffusionInstructPix2PixPipeline):
    """Fairy video editing as a diffusers ``DiffusionPipeline``.

    Same components as :class:`diffusers.StableDiffusionInstructPix2PixPipeline` (VAE, CLIP
    text encoder and tokenizer, an 8-channel image-conditioned UNet, scheduler), so
    ``FairyPipeline.from_pretrained(folder)`` loads any InstructPix2Pix checkpoint folder (e.g.
    a local copy of ``timbrooks/instruct-pix2pix``) with diffusers' own loader, ``torch_dtype``,
    ``local_files_only``, ``.to(device)`` and offloading. Loading a pipeline whose UNet is not
    image-conditioned (a text-to-image ``StableDiffusionPipeline``: 4 input channels) raises
    ``TypeError``.

    Calling it edits a video (:meth:`FairyVideoEditor.edit_video`); :meth:`edit_video_file`
    edits a file and keeps its frame rate; :meth:`edit_images` is the plain InstructPix2Pix
    call on a batch of images.

    References
    ----------
    Wu et al., "Fairy: Fast Parallelized Instruction-Guided Video-to-Video Synthesis",
    CVPR 2024. arXiv:2312.13834.

    Examples
    --------
    >>> pipe = FairyPipeline.from_pretrained(  # doctest: +SKIP
    ...     "path/to/instruct-pix2pix", torch_dtype=torch.float16, local_files_only=True
    ... ).to("cuda")
    >>> out = pipe.edit_video_file(
    ...     "in.mp4", "out.mp4", "turn it into a watercolor"
    ... )  # doctest: +SKIP
    """

    def __init__(
        self,
        vae: Any,
        text_encoder: Any,
        tokenizer: Any,
        unet: Any,
        scheduler: Any,
        safety_checker: Any = None,
        feature_extractor: Any = None,
        image_encoder: Any = None,
        requires_safety_checker: bool = False,
    ) -> None:
        super().__init__(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=safety_checker,
            feature_extractor=feature_extractor,
            image_encoder=image_encoder,
            requires_safety_checker=requires_safety_checker,
        )
        check_instruct_pix2pix(self)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | Path, **kwargs: Any
    ) -> FairyPipeline:
        """Load an InstructPix2Pix checkpoint folder (diffusers' ``from_pretrained``).

        Parameters
        ----------
        pretrained_model_name_or_path : str or Path
            A local folder saved by ``save_pretrained`` (or a hub id, which diffusers may
            download unless ``local_files_only=True``).
        **kwargs
            Passed to diffusers (``torch_dtype``, ``local_files_only``, ``variant``...).
            ``safety_checker`` defaults to ``None``.

        Raises
        ------
        TypeError
            If the checkpoint is not an image-editing (8-channel UNet) pipeline.
        """
        kwargs.setdefault("safety_checker", None)
        kwargs.setdefault("requires_safety_checker", False)
        pipe: FairyPipeline = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        return pipe

    def edit_images(self, *args: Any, **kwargs: Any) -> Any:
        """The plain InstructPix2Pix call (``StableDiffusionInstructPix2PixPipeline.__call__``)."""
        return StableDiffusionInstructPix2PixPipeline.__call__(self, *args, **kwargs)

    def __call__(self, video: Any, instruction: str | None = None, **kwargs: Any) -> FairyOutput:
        """Edit a video: :meth:`FairyVideoEditor.edit_video` with this pipeline."""
        return FairyVideoEditor(self).edit_video(video, instruction, **kwargs)

    edit_video = __call__

    def edit_video_file(
        self, src: str | Path, dst: str | Path, instruction: str | None = None, **kwargs: Any
    ) -> FairyOutput:
        """Edit a video file, writing ``dst`` at the source fps (:meth:`FairyVideoEditor.edit_video_file`)."""
        return FairyVideoEditor(self).edit_video_file(src, dst, instruction, **kwargs)
