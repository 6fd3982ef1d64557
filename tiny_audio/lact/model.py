"""LaCT CTC speech recognizer, trained from scratch on characters.

Read top to bottom: log-mel front end -> convolutional subsampling -> blocks of (sliding-window
attention, LaCT layer, SwiGLU feed-forward), each pre-norm residual -> CTC head.

The LaCT layer ("Test-Time Training Done Right", Zhang et al. 2025) keeps, per head, a small
SwiGLU network f(x) = W1 (silu(W0 x) * W2 x) as *fast weights*. The sequence is cut into large
chunks; on each chunk the fast weights take one gradient step on -<f(k), v> (so f learns to map
the chunk's keys to its values) and are then applied to the chunk's queries. Offline ASR sees the
whole utterance, so each chunk is updated on first and applied after ("bidirectional" form).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .config import LaCTConfig
from .decoding import beam_search_decode, greedy_decode
from .lm import LM_FILE, CharLM
from .tokenizer import CharTokenizer

try:  # Inside tiny-audio: its recognizer defaults and one-line errors.
    from tiny_audio.audio import SAMPLE_RATE, load_audio
    from tiny_audio.errors import UserError
    from tiny_audio.model.layers import SwiGLU, length_mask
    from tiny_audio.model.windows import split_windows
    from tiny_audio.recognizer import RecognizerBase, reading

    if TYPE_CHECKING:  # at run time only when words are asked for: it imports transformers
        from tiny_audio.model.alignment import Word
except ImportError:  # Copied beside a pushed model as remote code (hf.py), without tiny-audio.
    from contextlib import nullcontext as reading  # type: ignore[assignment]

    from .audio import SAMPLE_RATE, load_audio  # type: ignore[no-redef]
    from .layers import SwiGLU, length_mask  # type: ignore[no-redef]
    from .windows import split_windows  # type: ignore[no-redef]

    UserError = ValueError  # type: ignore[assignment,misc]
    RecognizerBase = object  # type: ignore[assignment,misc]

N_FFT = 400  # 25 ms windows
HOP_LENGTH = 160  # 10 ms frames; two stride-2 convolutions make 40 ms tokens


# --- Front end ------------------------------------------------------------------------------


class LogMel(nn.Module):
    """Whisper's log-mel spectrogram of one utterance, at its own length (no padding to 30 s)."""

    filters: Tensor
    window: Tensor

    def __init__(self, num_mel_bins: int) -> None:
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        filters = mel_filter_bank(
            num_frequency_bins=N_FFT // 2 + 1,
            num_mel_filters=num_mel_bins,
            min_frequency=0.0,
            max_frequency=SAMPLE_RATE / 2,
            sampling_rate=SAMPLE_RATE,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer(
            "filters", torch.tensor(filters.T, dtype=torch.float32), persistent=False
        )
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, waveform: Tensor) -> Tensor:
        """(samples,) -> (frames, num_mel_bins)."""
        if waveform.numel() < N_FFT:  # reflect padding needs a few samples
            waveform = F.pad(waveform, (0, N_FFT - waveform.numel()))
        spectrum = torch.stft(waveform, N_FFT, HOP_LENGTH, window=self.window, return_complex=True)
        power = spectrum[:, :-1].abs() ** 2
        log_spec = (self.filters @ power).clamp(min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return ((log_spec + 4.0) / 4.0).T


class AudioEncoder(nn.Module):
    """`audio_encoder_layers` 1-D convolutions; the first two halve the frame rate (4x in all)."""

    def __init__(self, config: LaCTConfig) -> None:
        super().__init__()
        self.strides = [2 if index < 2 else 1 for index in range(config.audio_encoder_layers)]
        self.convs = nn.ModuleList(
            nn.Conv1d(
                config.num_mel_bins if index == 0 else config.hidden_size,
                config.hidden_size,
                kernel_size=3,
                stride=stride,
                padding=1,
            )
            for index, stride in enumerate(self.strides)
        )
        self.dropout = nn.Dropout(config.audio_encoder_dropout)

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(batch, frames, mels) -> (batch, tokens, hidden) and each utterance's token count."""
        x = features.transpose(1, 2)
        for conv, stride in zip(self.convs, self.strides, strict=True):
            x = F.gelu(conv(x))
            lengths = (lengths - 1) // stride + 1
            # Zero the padding so the next convolution sees what an unpadded utterance would.
            x = x * length_mask(lengths, x.shape[-1])[:, None, :]
        return self.dropout(x.transpose(1, 2)), lengths


# --- Rotary positions -----------------------------------------------------------------------


def rotary_tables(
    length: int, dim: int, theta: float, device: torch.device
) -> tuple[Tensor, Tensor]:
    frequencies = theta ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * frequencies
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return x * cos.to(x.dtype) + torch.cat([-second, first], dim=-1) * sin.to(x.dtype)


# --- Sliding-window attention ---------------------------------------------------------------


class SelfAttention(nn.Module):
    """Bidirectional multi-head attention with rotary positions; `window` limits it to the
    tokens at most that far away (None: the whole utterance). Padding is never attended to."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        inner_dim: int,
        window: int | None,
        config: LaCTConfig,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = inner_dim // num_heads
        self.window = window
        self.rope_theta = config.rope_theta
        self.dropout = config.dropout
        self.qkv = nn.Linear(hidden_size, 3 * inner_dim, bias=False)
        self.out = nn.Linear(inner_dim, hidden_size, bias=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        cos, sin = rotary_tables(length, self.head_dim, self.rope_theta, x.device)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)

        positions = torch.arange(length, device=x.device)
        allowed = mask[:, None, None, :]
        if self.window is not None:
            distance = (positions[:, None] - positions[None, :]).abs()
            allowed = allowed & (distance <= self.window)
        # A padded query sees itself, so no row is empty (an empty softmax row would be NaN).
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=x.device)
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)
        return self.out(out.transpose(1, 2).reshape(batch, length, -1))


# --- LaCT layer -----------------------------------------------------------------------------


def swiglu_apply(w0: Tensor, w1: Tensor, w2: Tensor, x: Tensor) -> Tensor:
    """Per-head fast-weight SwiGLU: x (batch, heads, tokens, dim) -> W1 (silu(W0 x) * W2 x)."""
    return (F.silu(x @ w0.mT) * (x @ w2.mT)) @ w1.mT


def swiglu_gradients(
    w0: Tensor, w1: Tensor, w2: Tensor, k: Tensor, v: Tensor, lr: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of sum_t -lr_t <f(k_t), v_t> for W0, W1, W2, written out by hand so one chunk is
    a few batched matmuls. lr: (3, batch, heads, tokens), one rate per weight and token."""
    hidden = k @ w0.mT
    gate = k @ w2.mT
    activated = F.silu(hidden)
    grad_out = -v
    grad_inner = grad_out @ w1  # d loss / d (silu(W0 k) * W2 k)
    sigmoid = torch.sigmoid(hidden)
    grad_hidden = grad_inner * gate * sigmoid * (1 + hidden * (1 - sigmoid))
    grad_gate = grad_inner * activated
    lr0, lr1, lr2 = (rate[..., None] for rate in lr)
    grad_w0 = (grad_hidden * lr0).mT @ k
    grad_w1 = (grad_out * lr1).mT @ (activated * gate)
    grad_w2 = (grad_gate * lr2).mT @ k
    return grad_w0, grad_w1, grad_w2


def newton_schulz(matrix: Tensor, steps: int = 5) -> Tensor:
    """Muon's quintic Newton-Schulz iteration: pushes every singular value of each matrix towards
    1 (roughly into [0.7, 1.2]) while keeping its singular vectors, i.e. orthogonalises it."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = matrix / (matrix.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = x.mT
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if transposed else x


def renormalize(weight: Tensor, row_norms: Tensor) -> Tensor:
    """Give each row back its initial norm, so repeated updates cannot blow the weights up."""
    return weight * (row_norms / weight.norm(dim=-1, keepdim=True).clamp(min=1e-5))


def reverse_second_half_heads(x: Tensor, reversal: Tensor) -> Tensor:
    """x (..., batch, heads, tokens, dim): the second half of the heads gets each utterance's real
    tokens in reverse order, padding left at the end. reversal (batch, tokens) is the gather index;
    applying this twice gives x back."""
    flipped = x.gather(-2, reversal[:, None, :, None].expand(x.shape))
    heads = x.shape[-3]
    backward = torch.arange(heads, device=x.device) >= heads // 2
    return torch.where(backward[:, None, None], flipped, x)


def reversal_index(mask: Tensor) -> Tensor:
    """(batch, tokens) mask -> the index that reverses each row's real tokens in place."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    lengths = mask.sum(dim=1, keepdim=True)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


class LaCTLayer(nn.Module):
    """Large-chunk test-time training: per-head fast-weight SwiGLUs updated once per chunk."""

    def __init__(self, config: LaCTConfig) -> None:
        super().__init__()
        hidden, heads = config.hidden_size, config.num_lact_heads
        head_dim, inner = config.lact_head_dim, config.lact_inner_dim
        self.num_heads, self.head_dim = heads, head_dim
        self.chunk_size = config.lact_chunk_size
        self.use_muon = config.lact_muon
        self.bidirectional = config.lact_bidirectional
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        # One learning rate per token, head and fast weight; softplus keeps it positive.
        self.lr_proj = nn.Linear(hidden, 3 * heads)
        self.base_lr_logit = math.log(math.expm1(config.lact_base_lr))
        self.momentum_proj = nn.Linear(hidden, heads) if config.lact_momentum else None
        # The fast weights' starting point is learned like any other parameter.
        self.w0 = nn.Parameter(torch.randn(heads, inner, head_dim) / math.sqrt(head_dim))
        self.w1 = nn.Parameter(torch.randn(heads, head_dim, inner) / math.sqrt(inner))
        self.w2 = nn.Parameter(torch.randn(heads, inner, head_dim) / math.sqrt(head_dim))
        self.out_norm = nn.RMSNorm(head_dim, eps=config.rms_norm_eps)
        self.out = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        batch, length, hidden = x.shape
        q, k, v = (
            self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        )
        # The fast-weight algebra runs in at least fp32, even under bf16 autocast: it is touchy.
        dtype = torch.promote_types(x.dtype, torch.float32)
        # Padded tokens get a zero learning rate: they never touch the fast weights.
        lr = F.softplus(self.lr_proj(x).to(dtype) + self.base_lr_logit) * mask[..., None]
        lr = lr.view(batch, length, 3, self.num_heads).permute(2, 0, 3, 1)
        momentum = None
        if self.momentum_proj is not None:
            momentum = torch.sigmoid(self.momentum_proj(x).to(dtype)).transpose(1, 2)
        with torch.autocast(x.device.type, enabled=False):
            q, k = F.normalize(q.to(dtype), dim=-1), F.normalize(k.to(dtype), dim=-1)
            v = v.to(dtype)
            if self.bidirectional:
                reversal = reversal_index(mask)
                q, k, v = (reverse_second_half_heads(t, reversal) for t in (q, k, v))
                lr = reverse_second_half_heads(lr[..., None], reversal)[..., 0]
                if momentum is not None:
                    momentum = reverse_second_half_heads(momentum[..., None], reversal)[..., 0]
            out, _ = self.fast_weight_pass(q, k, v, lr, momentum, mask)
            if self.bidirectional:
                out = reverse_second_half_heads(out, reversal)
        out = self.out_norm(out).to(x.dtype).transpose(1, 2).reshape(batch, length, hidden)
        return self.out(out)

    def fast_weight_pass(
        self, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, momentum: Tensor | None, mask: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        """q, k, v: (batch, heads, tokens, head_dim) -> outputs of the same shape, and the
        fast weights [W0, W1, W2] after the last chunk."""
        batch = q.shape[0]
        w0, w1, w2 = (w.to(q.dtype).expand(batch, *w.shape) for w in (self.w0, self.w1, self.w2))
        row_norms = [w.norm(dim=-1, keepdim=True) for w in (w0, w1, w2)]
        velocity = [torch.zeros_like(w) for w in (w0, w1, w2)]
        outputs = []
        for start in range(0, q.shape[2], self.chunk_size):
            chunk = slice(start, start + self.chunk_size)
            updates = list(
                swiglu_gradients(w0, w1, w2, k[:, :, chunk], v[:, :, chunk], lr[..., chunk])
            )
            if momentum is not None:
                # One momentum per head and chunk: the mean over the chunk's real tokens.
                chunk_mask = mask[:, None, chunk].float()
                beta = (momentum[..., chunk] * chunk_mask).sum(-1) / chunk_mask.sum(-1).clamp(min=1)
                velocity = [
                    beta[..., None, None] * vel + upd
                    for vel, upd in zip(velocity, updates, strict=True)
                ]
                updates = velocity
            if self.use_muon:
                updates = [newton_schulz(update) for update in updates]
            w0, w1, w2 = (
                renormalize(w - update, norms)
                for w, update, norms in zip((w0, w1, w2), updates, row_norms, strict=True)
            )
            outputs.append(swiglu_apply(w0, w1, w2, q[:, :, chunk]))
        return torch.cat(outputs, dim=2), [w0, w1, w2]


def equal_size_attention(config: LaCTConfig) -> SelfAttention:
    """Ablation baseline: whole-utterance attention as wide as needed to match a LaCT layer's
    parameter count (rounded to a whole number of even-sized heads)."""
    lact_parameters = sum(p.numel() for p in LaCTLayer(config).parameters())
    step = 2 * config.num_lact_heads
    inner_dim = max(step, round(lact_parameters / (4 * config.hidden_size) / step) * step)
    return SelfAttention(config.hidden_size, config.num_lact_heads, inner_dim, None, config)


# mixer name -> the layer that follows attention in every block.
MIXERS: dict[str, Any] = {"lact": LaCTLayer, "attention": equal_size_attention}


# --- Feed-forward, blocks, CTC head ---------------------------------------------------------


class LaCTBlock(nn.Module):
    def __init__(self, config: LaCTConfig) -> None:
        super().__init__()
        hidden, eps = config.hidden_size, config.rms_norm_eps
        self.attention_norm = nn.RMSNorm(hidden, eps=eps)
        self.attention = SelfAttention(
            hidden, config.num_attn_heads, hidden, config.attention_window, config
        )
        self.mixer_norm = nn.RMSNorm(hidden, eps=eps)
        self.mixer = MIXERS[config.mixer](config)
        self.ffn_norm = nn.RMSNorm(hidden, eps=eps)
        self.ffn = SwiGLU(hidden, config.intermediate_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))
        x = x + self.dropout(self.mixer(self.mixer_norm(x), mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class LaCTForCTC(nn.Module, RecognizerBase):
    """The whole recognizer: a tiny_audio Recognizer that times its own words."""

    transcribe_options = ("num_beams", "chunk_length_s", "stride_length_s")

    def __init__(self, config: LaCTConfig, tokenizer: CharTokenizer | None = None) -> None:
        super().__init__()
        self.tokenizer = tokenizer or CharTokenizer()
        if len(self.tokenizer) != config.vocab_size:
            raise UserError(
                f"vocab has {len(self.tokenizer)} entries, config says {config.vocab_size}"
            )
        self.config = config
        self.name = "lact"
        # Character LM for beam search, fitted on the training transcripts (lm.py); optional.
        self.lm: CharLM | None = None
        self.log_mel = LogMel(config.num_mel_bins)
        self.audio_encoder = AudioEncoder(config)
        self.blocks = nn.ModuleList(LaCTBlock(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.ctc_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, input_features: Tensor, feature_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(batch, frames, mels) log-mels -> (batch, tokens, vocab) CTC logits, token counts."""
        x, lengths = self.audio_encoder(input_features, feature_lengths)
        mask = length_mask(lengths, x.shape[1])
        for block in self.blocks:
            x = block(x, mask)
        return self.ctc_head(self.norm(x)), lengths

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- inference ---

    def features(self, waveforms: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        """Log-mels of each waveform, zero-padded into one batch, and their frame counts."""
        device = self.ctc_head.weight.device
        mels = [
            self.log_mel(torch.as_tensor(w, dtype=torch.float32, device=device)) for w in waveforms
        ]
        lengths = torch.tensor([len(m) for m in mels], device=device)
        return nn.utils.rnn.pad_sequence(mels, batch_first=True), lengths

    def decode(self, logits: Tensor, lengths: Tensor, num_beams: int = 1) -> list[str]:
        """Texts of a padded batch of logits (see `decode_clips`)."""
        clips = [row[:length] for row, length in zip(logits, lengths.tolist(), strict=True)]
        return self.decode_clips(clips, num_beams)

    def decode_clips(self, clips: list[Tensor], num_beams: int = 1) -> list[str]:
        """Texts of each clip's (frames, vocab) logits: greedy, or beam search fused with the
        character LM where there is one and `config.lm_weight` is above 0."""
        fuse = None
        if num_beams > 1 and self.lm is not None and self.config.lm_weight > 0:
            fuse = self.lm.fusion(self.tokenizer.vocab, self.config.lm_weight, self.config.lm_bonus)
        texts = []
        for clip in clips:
            log_probs = clip.float().log_softmax(-1).cpu()
            if num_beams > 1:
                ids = beam_search_decode(log_probs, num_beams, self.tokenizer.blank_id, fuse)
            else:
                ids = greedy_decode(log_probs, self.tokenizer.blank_id)
            texts.append(self.tokenizer.decode(ids))
        return texts

    @torch.no_grad()
    def clip_logits(
        self,
        waveforms: list[np.ndarray],
        chunk_length_s: float | None = None,
        stride_length_s: float | None = None,
        batch_size: int = 8,
    ) -> list[Tensor]:
        """(frames, vocab) CTC logits of each whole waveform. Audio longer than `chunk_length_s`
        (default `config.max_audio_seconds`) runs through the model in windows overlapping by
        `stride_length_s` (default a sixth of a window), so hours of audio fit in memory. Each
        overlap is split halfway: each window keeps the frames of its own half, where it has
        seen context on both sides, and the kept frames are joined in order."""
        chunk = chunk_length_s or self.config.max_audio_seconds
        grid = HOP_LENGTH * math.prod(self.audio_encoder.strides)  # samples per CTC frame

        def middle(earlier_end: int, later_begin: int) -> int:
            """Where an overlap is split, on the frame grid: a window's frames are the clip's."""
            return later_begin + (earlier_end - later_begin) // grid // 2 * grid

        windows: list[tuple[int, np.ndarray, slice]] = []
        for index, wave in enumerate(waveforms):
            spans = split_windows(len(wave), chunk, stride_length_s, grid)
            for number, (begin, end, overlaps) in enumerate(spans):
                last = number + 1 == len(spans)
                keep_from = middle(spans[number - 1][1], begin) if overlaps else begin
                keep_to = end if last else middle(end, spans[number + 1][0])
                frames = slice(
                    (keep_from - begin) // grid, None if last else (keep_to - begin) // grid
                )
                windows.append((index, wave[begin:end], frames))
        pieces: list[list[Tensor]] = [[] for _ in waveforms]
        for first in range(0, len(windows), batch_size):
            batch = windows[first : first + batch_size]
            logits, lengths = self(*self.features([wave for _, wave, _ in batch]))
            for (index, _, frames), row, length in zip(
                batch, logits, lengths.tolist(), strict=True
            ):
                pieces[index].append(row[:length][frames])
        return [torch.cat(clip) for clip in pieces]

    def transcribe(
        self, audio: list[Any], num_beams: int = 1, batch_size: int = 8, **options: Any
    ) -> list[str]:
        """Texts for 16 kHz mono waveforms (anything tiny_audio.audio.load_audio accepts);
        `options` are those of `clip_logits` (chunk_length_s, stride_length_s)."""
        texts: list[str] = []
        for clips in self._logits_in_batches(audio, batch_size, options):
            texts.extend(self.decode_clips(clips, num_beams))
        return texts

    def transcribe_words(
        self, audio: list[Any], batch_size: int = 8, num_beams: int = 1, **options: Any
    ) -> list[list[Word]]:
        """Each clip's words, timed by its own CTC frames (lact/alignment.py); decoded piece by
        piece between pauses, so that each piece aligns in little memory. Options as
        `transcribe`."""
        try:  # absent from a pushed model's remote code, which writes transcripts only
            from tiny_audio.lact.alignment import ctc_words, pause_cuts
        except ImportError as error:
            raise UserError("word times of a LaCT model need tiny-audio installed") from error

        frame_seconds = HOP_LENGTH * math.prod(self.audio_encoder.strides) / SAMPLE_RATE
        blank = self.tokenizer.blank_id
        words: list[list[Word]] = []
        for clips in self._logits_in_batches(audio, batch_size, options):
            for logits in clips:
                log_probs = logits.float().log_softmax(-1).cpu().numpy()
                clip_words: list[Word] = []
                for piece in pause_cuts(log_probs, blank, frame_seconds):
                    text = self.decode_clips([logits[piece]], num_beams)[0]
                    labels = self.tokenizer.encode(text)
                    offset = piece.start * frame_seconds
                    clip_words += ctc_words(
                        log_probs[piece], text, labels, blank, frame_seconds, offset
                    )
                words.append(clip_words)
        return words

    def _logits_in_batches(
        self, audio: list[Any], batch_size: int, options: dict[str, Any]
    ) -> Iterator[list[Tensor]]:
        """`clip_logits` of `batch_size` clips at a time, in eval mode."""
        unknown = set(options) - {"chunk_length_s", "stride_length_s"}
        if unknown:
            raise UserError(
                "LaCT models take only num_beams, batch_size, chunk_length_s and "
                f"stride_length_s, not {', '.join(sorted(unknown))}"
            )
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(audio), batch_size):
                waveforms = [load_audio(item) for item in audio[start : start + batch_size]]
                yield self.clip_logits(waveforms, batch_size=batch_size, **options)
        finally:
            self.train(was_training)

    # --- checkpoints ---

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        self.tokenizer.save(directory)
        if self.lm is not None:
            self.lm.save(directory)
        state = {
            name: tensor.detach().contiguous().cpu() for name, tensor in self.state_dict().items()
        }
        save_file(state, str(directory / "model.safetensors"))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> LaCTForCTC:
        directory = Path(directory)
        config_file, weights = directory / "config.json", directory / "model.safetensors"
        with reading(config_file):
            config = LaCTConfig.load(directory)
        with reading(directory / "vocab.json"):
            tokenizer = CharTokenizer.load(directory)
        with reading(weights):
            state = load_file(str(weights))
        model = cls(config, tokenizer)
        expected = set(model.state_dict())
        unexpected, missing = set(state) - expected, expected - set(state)
        mismatch = f"{weights} does not match {config_file}"
        if unexpected or missing:
            raise UserError(
                f"{mismatch} (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as error:  # shaped otherwise than the config builds them
            raise UserError(f"{mismatch}: {str(error).splitlines()[-1].strip()}") from None
        with reading(directory / LM_FILE):
            model.lm = CharLM.load(directory)
        model.name = f"lact:{directory.name}"
        return model.to(device).eval()
