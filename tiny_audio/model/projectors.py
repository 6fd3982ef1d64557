"""Projectors: the trained bridge from encoder frames to LLM input embeddings.

Every projector first stacks k adjacent frames (output_len = (L - k) // k + 1), which shortens the
sequence the LLM must read, then maps k * encoder_dim to the LLM's width. Its output passes an
RMS norm whose gain starts at the RMS of the LLM's own token embeddings, so audio tokens enter
the LLM at the scale its layers expect.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration import ASRConfig


def stacked_lengths(lengths: torch.Tensor, k: int) -> torch.Tensor:
    """Frames after stacking k at a time; a clip shorter than k still yields one frame."""
    return ((lengths - k) // k + 1).clamp(min=1)


def stack_frames(hidden: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) frames -> (B, T', k * D) with padded frames zeroed first, and the new mask."""
    batch, frames, dim = hidden.shape
    hidden = hidden * mask[..., None].to(hidden.dtype)
    if frames < k:
        hidden = nn.functional.pad(hidden, (0, 0, 0, k - frames))
        frames = k
    out_frames = (frames - k) // k + 1
    stacked = hidden[:, : out_frames * k].reshape(batch, out_frames, k * dim)
    lengths = stacked_lengths(mask.sum(dim=1), k)
    new_mask = torch.arange(out_frames, device=mask.device)[None, :] < lengths[:, None]
    return stacked, new_mask


class Projector(nn.Module):
    """Base class. Subclasses build `self.body` or override `project`; `aux_loss` is optional."""

    def __init__(self, config: ASRConfig) -> None:
        super().__init__()
        assert config.encoder_dim and config.decoder_dim, "encoder_dim and decoder_dim must be set"
        self.k = config.projector_pool_stride
        self.input_dim = config.encoder_dim * self.k
        self.output_dim = config.decoder_dim
        self.output_norm = nn.RMSNorm(self.output_dim)
        nn.init.constant_(self.output_norm.weight, config.embedding_scale)
        self.aux_loss: torch.Tensor | None = None

    def project(self, stacked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return stacked_lengths(lengths, self.k)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stacked, mask = stack_frames(hidden, mask, self.k)
        return self.output_norm(self.project(stacked, mask)), mask


class MLPProjector(Projector):
    """Frame stacking -> Linear -> norm -> GELU -> Linear (seed 001's AudioProjector)."""

    def __init__(self, config: ASRConfig) -> None:
        super().__init__(config)
        hidden_dim = config.projector_hidden_dim
        self.body = nn.Sequential(
            nn.Linear(self.input_dim, hidden_dim),
            nn.RMSNorm(hidden_dim),
            nn.GELU(),
            nn.Dropout(config.projector_dropout),
            nn.Linear(hidden_dim, self.output_dim),
        )

    def project(self, stacked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.body(stacked)


PROJECTORS: dict[str, type[Projector]] = {
    "mlp": MLPProjector,
}


def build_projector(config: ASRConfig) -> Projector:
    if config.projector_type not in PROJECTORS:
        raise ValueError(
            f"unknown projector {config.projector_type!r}; known: {', '.join(sorted(PROJECTORS))}"
        )
    return PROJECTORS[config.projector_type](config)
