"""Building blocks that several models share (torch only, no transformers): the padding mask
and the gated feed-forward."""

from __future__ import annotations

import torch
from torch import nn


def length_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_length) bool, True on real frames."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)): the gate decides, per hidden unit, how much passes."""

    def __init__(
        self, input_dim: int, hidden_dim: int, output_dim: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.gate = nn.Linear(input_dim, hidden_dim, bias=False)
        self.up = nn.Linear(input_dim, hidden_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.down = nn.Linear(hidden_dim, output_dim or input_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(nn.functional.silu(self.gate(x)) * self.up(x)))
