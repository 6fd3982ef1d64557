"""Projectors: the trained bridge from encoder frames to LLM input embeddings.

Every projector first stacks k adjacent frames (output_len = (L - k) // k + 1), which shortens the
sequence the LLM must read, then maps k * encoder_dim to the LLM's width. Its output passes an
RMS norm whose gain starts at the RMS of the LLM's own token embeddings, so audio tokens enter
the LLM at the scale its layers expect. The Q-Former is the exception to stacking: it reads
windows of frames and emits a fixed number of query tokens per window.

    mlp      Linear -> norm -> GELU -> Linear
    swiglu   pre-norm -> gated SwiGLU MLP (post-norm is the shared output norm)
    mosa     dense mixture of experts: every expert runs, mixed by a softmax router
    moe      a shared expert plus top-k routed experts, with load-balancing and z-loss
    qformer  learnable queries cross-attend to windows of frames (BLIP-2, Granite speech)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from .layers import SwiGLU

if TYPE_CHECKING:  # only named: the lean runtime builds projectors without transformers
    from .configuration import ASRConfig


def stacked_lengths(lengths: torch.Tensor, k: int) -> torch.Tensor:
    """Frames after stacking k at a time; a clip shorter than k still yields one frame."""
    return ((lengths - k) // k + 1).clamp(min=1)


def stack_frames(
    hidden: torch.Tensor, mask: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
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

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        stacked, mask = stack_frames(hidden, mask, self.k)
        return self.output_norm(self.project(stacked, mask)), mask


class MLPProjector(Projector):
    """Frame stacking -> Linear -> norm -> GELU -> Linear."""

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


class SwiGLUProjector(Projector):
    """Frame stacking -> RMSNorm -> SwiGLU MLP -> output norm."""

    def __init__(self, config: ASRConfig) -> None:
        super().__init__(config)
        self.input_norm = nn.RMSNorm(self.input_dim)
        self.mlp = SwiGLU(
            self.input_dim, config.projector_hidden_dim, self.output_dim, config.projector_dropout
        )

    def project(self, stacked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.input_norm(stacked))


class Experts(nn.Module):
    """E two-layer GELU MLPs held as stacked weights, so all of them run in one einsum."""

    def __init__(self, num_experts: int, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.w_in = nn.Parameter(torch.empty(num_experts, input_dim, hidden_dim))
        self.b_in = nn.Parameter(torch.zeros(num_experts, hidden_dim))
        self.w_out = nn.Parameter(torch.empty(num_experts, hidden_dim, output_dim))
        self.b_out = nn.Parameter(torch.zeros(num_experts, output_dim))
        for weight in (self.w_in, self.w_out):  # nn.Linear's default: U(+-1/sqrt(fan_in))
            bound = 1 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, input_dim) -> (N, E, output_dim): every expert's output for every token."""
        hidden = nn.functional.gelu(torch.einsum("ni,eih->neh", x, self.w_in) + self.b_in)
        return torch.einsum("neh,eho->neo", hidden, self.w_out) + self.b_out


class MOSAProjector(Projector):
    """Dense mixture of experts: a softmax router weights all experts for every frame.

    `last_routing["probs"]` keeps the router probabilities of the last batch's real frames for
    `ta debug check-mosa`."""

    def __init__(self, config: ASRConfig) -> None:
        super().__init__(config)
        self.num_experts = config.projector_num_experts
        self.input_norm = nn.RMSNorm(self.input_dim)
        self.router = nn.Linear(self.input_dim, self.num_experts)
        self.experts = Experts(
            self.num_experts, self.input_dim, config.projector_hidden_dim, self.output_dim
        )
        self.dropout = nn.Dropout(config.projector_dropout)
        self.last_routing: dict[str, torch.Tensor] = {}

    def project(self, stacked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(stacked)
        probs = self.router(x).softmax(dim=-1)
        self.last_routing = {"probs": probs[mask].detach()}
        mixed = torch.einsum(
            "bte,bteo->bto", probs, self.experts(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        )
        return self.dropout(mixed)


class MoEProjector(Projector):
    """A shared expert for every frame plus top-k of E routed experts, weighted by the router.

    Only the chosen experts run. Two router losses go to `aux_loss`: Switch load balancing,
    E * sum_e(fraction of routed slots on e * mean router probability of e), which is 1 when
    routing is uniform, and the ST-MoE z-loss, mean(logsumexp(logits)^2), which keeps router
    logits small. `last_routing` keeps the probabilities, choices and both losses for logging."""

    def __init__(self, config: ASRConfig) -> None:
        super().__init__(config)
        self.num_experts, self.top_k = config.projector_num_experts, config.projector_top_k
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"projector_top_k={self.top_k} must be in 1..{self.num_experts}")
        self.balance_loss_coef = config.projector_balance_loss_coef
        self.z_loss_coef = config.projector_z_loss_coef
        hidden_dim = config.projector_hidden_dim
        self.input_norm = nn.RMSNorm(self.input_dim)
        self.shared = SwiGLU(self.input_dim, hidden_dim, self.output_dim, config.projector_dropout)
        self.router = nn.Linear(self.input_dim, self.num_experts, bias=False)
        self.experts = nn.ModuleList(
            SwiGLU(self.input_dim, hidden_dim, self.output_dim, config.projector_dropout)
            for _ in range(self.num_experts)
        )
        self.last_routing: dict[str, torch.Tensor] = {}

    def project(self, stacked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(stacked)
        tokens = x[mask]  # routing statistics and losses count real frames only
        logits = self.router(tokens)
        probs = logits.float().softmax(dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = (weights / weights.sum(dim=-1, keepdim=True)).to(tokens.dtype)
        routed = torch.zeros(
            tokens.shape[0], self.output_dim, dtype=tokens.dtype, device=tokens.device
        )
        for e, expert in enumerate(self.experts):
            rows, slot = (chosen == e).nonzero(as_tuple=True)
            if rows.numel():
                routed.index_add_(0, rows, weights[rows, slot, None] * expert(tokens[rows]))
        out = self.shared(x)
        out = out.masked_scatter(mask[..., None], (out[mask] + routed).to(out.dtype))

        routed_share = nn.functional.one_hot(chosen, self.num_experts).float().mean(dim=(0, 1))
        balance = self.num_experts * (routed_share * probs.mean(dim=0)).sum()
        z_loss = torch.logsumexp(logits.float(), dim=-1).pow(2).mean()
        self.aux_loss = self.balance_loss_coef * balance + self.z_loss_coef * z_loss
        self.last_routing = {
            "probs": probs.detach(),
            "chosen": chosen.detach(),
            "balance_loss": balance.detach(),
            "z_loss": z_loss.detach(),
        }
        return out


class QFormerProjector(Projector):
    """Learnable queries read fixed windows of encoder frames (BLIP-2's Q-Former, windowed as in
    Granite speech): each window of W frames becomes Q tokens, so output_len = ceil(L / W) * Q.

    Each layer: the queries attend to each other, cross-attend to their window's frames (plus a
    learned position within the window), then pass a feed-forward block."""

    def __init__(self, config: ASRConfig) -> None:
        super().__init__(config)
        self.window, self.num_queries = config.projector_window, config.projector_num_queries
        width, encoder_dim = config.projector_hidden_dim, self.input_dim // self.k
        self.frame_in = nn.Sequential(nn.RMSNorm(encoder_dim), nn.Linear(encoder_dim, width))
        self.frame_position = nn.Parameter(torch.randn(self.window, width) * 0.02)
        self.queries = nn.Parameter(torch.randn(self.num_queries, width) * 0.02)
        layer = nn.TransformerDecoderLayer(
            width,
            config.projector_num_heads,
            dim_feedforward=2 * width,
            dropout=config.projector_dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerDecoder(
            layer, config.projector_num_layers, norm=nn.RMSNorm(width)
        )
        self.out = nn.Linear(width, self.output_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        windows = (lengths + self.window - 1) // self.window
        return windows.clamp(min=1) * self.num_queries

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames, dim = hidden.shape
        num_windows = max(1, -(-frames // self.window))
        pad = num_windows * self.window - frames
        hidden = nn.functional.pad(hidden * mask[..., None].to(hidden.dtype), (0, 0, 0, pad))
        frame_mask = nn.functional.pad(mask, (0, pad)).reshape(batch * num_windows, self.window)
        # A window past the clip's end has no frame to attend to: let it see its (zero) padding
        # rather than produce NaNs; its tokens are masked out below.
        frame_mask = frame_mask | ~frame_mask.any(dim=1, keepdim=True)
        windows = (
            self.frame_in(hidden.reshape(batch * num_windows, self.window, dim))
            + self.frame_position
        )
        queries = self.queries.expand(batch * num_windows, -1, -1)
        tokens = self.layers(queries, windows, memory_key_padding_mask=~frame_mask)
        tokens = tokens.reshape(batch, num_windows * self.num_queries, -1)
        lengths = self.output_lengths(mask.sum(dim=1))
        new_mask = torch.arange(tokens.shape[1], device=mask.device)[None, :] < lengths[:, None]
        return self.output_norm(self.out(tokens)), new_mask


PROJECTORS: dict[str, type[Projector]] = {
    "mlp": MLPProjector,
    "swiglu": SwiGLUProjector,
    "mosa": MOSAProjector,
    "moe": MoEProjector,
    "qformer": QFormerProjector,
}


def build_projector(config: ASRConfig) -> Projector:
    if config.projector_type not in PROJECTORS:
        raise ValueError(
            f"unknown projector {config.projector_type!r}; known: {', '.join(sorted(PROJECTORS))}"
        )
    return PROJECTORS[config.projector_type](config)
