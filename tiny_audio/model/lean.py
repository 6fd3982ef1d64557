"""The lean runtime of a tiny-audio model: Whisper encoder -> mlp projector -> Llama decoder
(SmolLM2) read straight from their safetensors files, with torch, numpy and tokenizers only.

Why: importing transformers and peft and building their modules is most of a cold
`ta transcribe` (seconds, and hundreds of MB). This runtime computes what the fast form of
ASRModel (`prepare_for_inference`) computes, operation for operation, so that its greedy tokens
are the same: the log-mel of features.py, the Whisper encoder on each clip's real length (its
conv mask) or inside the 30 s window (`encoder_pad_to_window`), the projector of projectors.py,
the chat prompt with <audio> positions, LoRA merged into the decoder's weights as peft merges
it, the prompt's text before the audio computed once per prompt, batches padded between that
text and the audio, and at each step the attention call (mask, grouped heads) that
transformers' SDPA path makes. Weights are memory-mapped copy-on-write: a page is read when
used, and merging LoRA copies only the pages it writes.

It serves greedy decoding; beam search and sampling are handed to the Hugging Face form, loaded
when first asked for. Nothing here imports transformers or peft.
"""

from __future__ import annotations

import json
import math
import mmap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from .features import HOP_LENGTH, SAMPLE_RATE, batch_log_mel
from .layers import length_mask
from .projectors import Projector, build_projector
from .windows import Segment, WindowedRecognizer, transcribe_windows

try:  # Inside tiny-audio: parts resolve through its offline zoo; a damaged file is one line.
    from tiny_audio.errors import UserError
    from tiny_audio.recognizer import reading
    from tiny_audio.zoo import resolve as zoo_resolve
except ImportError:  # Loaded as Hub remote code without tiny-audio: no zoo, so never chosen.
    from contextlib import nullcontext as reading  # type: ignore[assignment]

    UserError = ValueError  # type: ignore[assignment,misc]
    zoo_resolve = None  # type: ignore[assignment]

WEIGHTS_NAME = "model.safetensors"
# Projectors checked token for token against the Hugging Face form.
PROJECTOR_TYPES = {"mlp"}
# As encoders.py: Whisper's normalised log-mel reads peak - 2 in silence.
SILENCE_BELOW_PEAK = 2.0
# SmolLM2's chat template (ChatML with a default system turn) around its default system text.
CHATML_HEAD = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n"
)
CHATML_TAIL = (
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n'"
    " }}{% endif %}"
)


class LoopGuard:
    """A tail that is one short pattern repeated over and over: a decoding loop to stop."""

    def __init__(self, max_period: int = 8, min_span: int = 16) -> None:
        self.max_period = max_period
        self.min_span = min_span

    @staticmethod
    def repeats(tokens: list[int], period: int) -> int:
        unit, count = tokens[-period:], 1
        while (
            len(tokens) >= (count + 1) * period
            and tokens[-(count + 1) * period : -count * period] == unit
        ):
            count += 1
        return count

    def looping_period(self, tokens: list[int]) -> int | None:
        for period in range(1, self.max_period + 1):
            needed = max(4, math.ceil(self.min_span / period))
            if len(tokens) >= needed * period and self.repeats(tokens, period) >= needed:
                return period
        return None

    def trim(self, tokens: list[int]) -> list[int]:
        """Keep one copy of a looping tail."""
        period = self.looping_period(tokens)
        if period is None:
            return tokens
        return tokens[: len(tokens) - (self.repeats(tokens, period) - 1) * period]


def stop_tokens(end_ids: Iterable[int | None], vocabulary: list[str]) -> list[int]:
    """The decoder's end-of-turn tokens, and every token holding a line break (`vocabulary`:
    each id decoded alone): a transcript is one line, and what an instruct LLM writes after one
    (translations, chat) is not speech."""
    line_breaks = {i for i, text in enumerate(vocabulary) if "\n" in text or "\r" in text}
    return sorted({int(i) for i in end_ids if i is not None} | line_breaks)


def float32_tensors(path: Path, prefix: str) -> bool:
    """Whether a safetensors file holds tensors named `prefix`... and only float32 ones (the
    Hugging Face form computes in float32; this runtime computes in the file's own type)."""
    with reading(path), open(path, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    header.pop("__metadata__", None)
    return any(name.startswith(prefix) for name in header) and all(
        entry["dtype"] == "F32" for entry in header.values()
    )


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a float32 safetensors file as a view of one private memory map of it: a
    page is read when first used, and writing one copies that page alone (the file never
    changes). The tensors keep the map alive."""
    with open(path, "rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    header_size = int.from_bytes(mapped[:8], "little")
    header = json.loads(mapped[8 : 8 + header_size])
    header.pop("__metadata__", None)
    tensors = {}
    for name, entry in header.items():
        shape = list(entry["shape"])
        begin, end = entry["data_offsets"]
        count = math.prod(shape)
        if (
            entry["dtype"] != "F32"
            or end - begin != 4 * count
            or 8 + header_size + end > len(mapped)
        ):
            raise ValueError(f"{name}: bytes {begin}..{end} do not hold float32 {shape}")
        tensors[name] = (
            torch.frombuffer(
                mapped, dtype=torch.float32, count=count, offset=8 + header_size + begin
            )
            if count
            else torch.empty(0)
        ).view(shape)
    return tensors


def _linear(x: torch.Tensor, weights: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.linear(x, weights[f"{name}.weight"], weights.get(f"{name}.bias"))


class WhisperEncoder:
    """WhisperAudioEncoder (encoders.py) of a WhisperModel's `model.encoder.*` weights."""

    def __init__(
        self, weights: dict[str, torch.Tensor], config: dict[str, Any], pad_to_window: bool
    ) -> None:
        prefix = "model.encoder."
        self.weights = {
            k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)
        }
        self.heads = int(config["encoder_attention_heads"])
        self.num_layers = int(config["encoder_layers"])
        self.max_frames = int(config["max_source_positions"])
        self.pad_to_window = pad_to_window

    @staticmethod
    def output_lengths(feature_lengths: torch.Tensor) -> torch.Tensor:
        return (feature_lengths - 1) // 2 + 1  # conv2 has stride 2, kernel 3, padding 1

    def __call__(
        self, features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pad_to_window:
            return self._window(features, feature_lengths)
        w = self.weights
        hidden = F.gelu(F.conv1d(features, w["conv1.weight"], w["conv1.bias"], padding=1))
        # Zero conv1's output past each clip's end so conv2 sees what a lone clip would.
        hidden = hidden * length_mask(feature_lengths, hidden.shape[-1])[:, None, :].to(
            hidden.dtype
        )
        hidden = F.gelu(
            F.conv1d(hidden, w["conv2.weight"], w["conv2.bias"], stride=2, padding=1)
        ).transpose(1, 2)
        if hidden.shape[1] > self.max_frames:
            raise ValueError(f"audio longer than the encoder's {self.max_frames} frames; chunk it")
        hidden = hidden + w["embed_positions.weight"][: hidden.shape[1]]
        mask = length_mask(self.output_lengths(feature_lengths), hidden.shape[1])
        blocked = torch.zeros(mask.shape, dtype=hidden.dtype).masked_fill(
            ~mask, torch.finfo(hidden.dtype).min
        )
        attention_mask = blocked[:, None, None, :].expand(-1, 1, mask.shape[1], -1)
        return self._layers(hidden, attention_mask), mask

    def _window(
        self, features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each clip in a full window of silence; the frames past the longest clip are dropped."""
        window_features = 2 * self.max_frames
        if features.shape[-1] > window_features:
            raise ValueError(f"audio longer than the encoder's {self.max_frames} frames; chunk it")
        real = length_mask(feature_lengths, features.shape[-1])[:, None, :]
        peak = features.masked_fill(~real, float("-inf")).amax(dim=(1, 2), keepdim=True)
        window = (peak - SILENCE_BELOW_PEAK).expand(-1, features.shape[1], window_features)
        window = window.clone()
        window[..., : features.shape[-1]] = torch.where(real, features, window[..., :1])
        w = self.weights
        hidden = F.gelu(F.conv1d(window, w["conv1.weight"], w["conv1.bias"], padding=1))
        hidden = F.gelu(F.conv1d(hidden, w["conv2.weight"], w["conv2.bias"], stride=2, padding=1))
        hidden = self._layers(hidden.permute(0, 2, 1) + w["embed_positions.weight"], None)
        lengths = self.output_lengths(feature_lengths)
        longest = int(lengths.max())
        return hidden[:, :longest], length_mask(lengths, longest)

    def _layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        w, width = self.weights, (hidden.shape[-1],)
        for i in range(self.num_layers):
            layer = f"layers.{i}."
            normed = F.layer_norm(
                hidden,
                width,
                w[layer + "self_attn_layer_norm.weight"],
                w[layer + "self_attn_layer_norm.bias"],
            )
            hidden = hidden + self._attention(normed, layer + "self_attn.", attention_mask)
            normed = F.layer_norm(
                hidden,
                width,
                w[layer + "final_layer_norm.weight"],
                w[layer + "final_layer_norm.bias"],
            )
            hidden = hidden + _linear(F.gelu(_linear(normed, w, layer + "fc1")), w, layer + "fc2")
        return F.layer_norm(hidden, width, w["layer_norm.weight"], w["layer_norm.bias"])

    def _attention(
        self, x: torch.Tensor, prefix: str, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        batch, frames, width = x.shape
        head_dim = width // self.heads
        shape = (batch, frames, self.heads, head_dim)
        w = self.weights
        # Whisper scales the queries, then attends with scale 1.
        query = (_linear(x, w, prefix + "q_proj") * head_dim**-0.5).view(shape)
        query = query.transpose(1, 2).contiguous()
        key = _linear(x, w, prefix + "k_proj").view(shape).transpose(1, 2).contiguous()
        value = _linear(x, w, prefix + "v_proj").view(shape).transpose(1, 2).contiguous()
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=1.0)
        out = out.transpose(1, 2).contiguous().reshape(batch, frames, width).contiguous()
        return _linear(out, w, prefix + "out_proj")


KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class LlamaDecoder:
    """A LlamaForCausalLM (RMSNorm, rotary positions, grouped-query attention, SwiGLU) of its
    `model.*` weights, computed as transformers computes it with SDPA attention."""

    def __init__(self, weights: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
        self.weights = weights
        self.embed = weights["model.embed_tokens.weight"]
        self.lm_head = (
            self.embed if config.get("tie_word_embeddings") else weights["lm_head.weight"]
        )
        self.heads = int(config["num_attention_heads"])
        self.kv_heads = int(config.get("num_key_value_heads") or self.heads)
        self.head_dim = int(config.get("head_dim") or config["hidden_size"] // self.heads)
        self.num_layers = int(config["num_hidden_layers"])
        self.eps = float(config["rms_norm_eps"])
        theta = rope_theta(config)
        if theta is None:
            raise ValueError("only plain rotary positions are computed here")
        self.inv_freq = 1.0 / (
            theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float) / self.head_dim)
        )

    def rms_norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weights[name] * (x * torch.rsqrt(variance + self.eps))

    def forward(
        self,
        embeds: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None,
        past: KVCache | None,
    ) -> tuple[torch.Tensor, KVCache]:
        """The final hidden states (B, T, D) and the keys and values with these positions'
        added. `mask`: (B, 1, T, K) bool, True where a query may attend; None where
        transformers passes none (no padding, and one query or a plain causal square)."""
        freqs = positions[..., None].float() * self.inv_freq
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos()[:, None], angles.sin()[:, None]
        hidden, cache = embeds, []
        for i in range(self.num_layers):
            layer = f"model.layers.{i}."
            x = self.rms_norm(hidden, layer + "input_layernorm.weight")
            query, keys, values = self._projections(x, layer + "self_attn.", cos, sin)
            if past is not None:  # transformers' cache appends; a first entry is kept as given
                keys = torch.cat([past[i][0], keys], dim=-2)
                values = torch.cat([past[i][1], values], dim=-2)
            cache.append((keys, values))
            attended = self._attend(query, keys, values, mask)
            hidden = hidden + _linear(attended, self.weights, layer + "self_attn.o_proj")
            x = self.rms_norm(hidden, layer + "post_attention_layernorm.weight")
            gate = F.silu(_linear(x, self.weights, layer + "mlp.gate_proj"))
            up = _linear(x, self.weights, layer + "mlp.up_proj")
            hidden = hidden + _linear(gate * up, self.weights, layer + "mlp.down_proj")
        return self.rms_norm(hidden, "model.norm.weight"), cache

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, V) float32 scores of the next token after the last position."""
        return F.linear(hidden[:, -1:], self.lm_head)[:, -1].float()

    def _projections(
        self, x: torch.Tensor, prefix: str, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = (*x.shape[:2], -1, self.head_dim)
        query = _linear(x, self.weights, prefix + "q_proj").view(shape).transpose(1, 2)
        key = _linear(x, self.weights, prefix + "k_proj").view(shape).transpose(1, 2)
        value = _linear(x, self.weights, prefix + "v_proj").view(shape).transpose(1, 2)
        return _rotate(query, cos, sin), _rotate(key, cos, sin), value

    def _attend(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Grouped-query attention laid out as transformers' SDPA path lays it out (the layout
        picks the kernel, and kernels round differently): grouped by SDPA without a mask, the
        query's heads folded onto the key heads for one query with a mask, else the key and
        value heads repeated."""
        batch, heads, length, head_dim = query.shape
        groups = heads // self.kv_heads
        options: dict[str, Any] = {}
        if groups > 1 and mask is None:
            options["enable_gqa"] = True
        elif groups > 1 and length == 1:
            query = query.reshape(batch, heads // groups, groups, head_dim)
        elif groups > 1:
            keys, values = _repeat_heads(keys, groups), _repeat_heads(values, groups)
        out = F.scaled_dot_product_attention(
            query,
            keys,
            values,
            attn_mask=mask,
            scale=head_dim**-0.5,
            is_causal=length > 1 and mask is None,
            **options,
        )
        out = out.reshape(batch, -1, length, head_dim).transpose(1, 2).contiguous()
        return out.reshape(batch, length, -1).contiguous()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions: each half of the head turned against the other."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _repeat_heads(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, heads, length, head_dim = x.shape
    expanded = x[:, :, None].expand(batch, heads, groups, length, head_dim)
    return expanded.reshape(batch, heads * groups, length, head_dim)


def rope_theta(config: dict[str, Any]) -> float | None:
    """The rotary base of plain (unscaled) rotary positions; None for any other kind."""
    rope = config.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default" or config.get("rope_scaling"):
        return None
    theta = rope.get("rope_theta", config.get("rope_theta"))
    return None if theta is None else float(theta)


def causal_mask(
    padding: torch.Tensor | None, batch: int, queries: int, keys: int
) -> torch.Tensor | None:
    """The mask transformers' SDPA path builds for `queries` new positions after
    `keys - queries` cached ones: None without padding for one query or a plain causal square,
    else (batch, 1, queries, keys) bool, causal and hiding the keys `padding` marks False."""
    if padding is None and (queries == 1 or queries == keys):
        return None
    query_at = torch.arange(queries) + keys - queries
    mask = (torch.arange(keys)[None, :] <= query_at[:, None])[None, None]
    if padding is not None:
        mask = padding[:, None, None, :keys] & mask
    return mask.expand(batch, 1, queries, keys)


# ASRConfig's defaults for the keys read here (a saved config may predate a key); a unit test
# holds them equal to configuration.py's.
CONFIG_DEFAULTS: dict[str, Any] = {
    "projector_type": "mlp",
    "projector_pool_stride": 4,
    "projector_hidden_dim": 1024,
    "projector_dropout": 0.0,
    "embedding_scale": 1.0,
    "lora_rank": 0,
    "lora_alpha": 32,
    "lora_target_modules": ["q_proj", "v_proj"],
    "encoder_lora_rank": 0,
    "audio_token": "<audio>",
    "user_prompt": "Transcribe: ",
    "system_prompt": None,
    "max_audio_seconds": 30.0,
    "encoder_pad_to_window": False,
    "ctc_weight": 0.0,
}
# What ASRProcessor's WhisperFeatureExtractor must be for features.py to compute its features.
WHISPER_FEATURES = {
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 80,
    "hop_length": HOP_LENGTH,
    "n_fft": 400,
    "sampling_rate": SAMPLE_RATE,
    "chunk_length": 30,
}
# The generation options served here; others (and beams or sampling) go to the HF form.
GREEDY_OPTIONS = {
    "max_new_tokens",
    "repetition_guard",
    "num_beams",
    "do_sample",
    "temperature",
    "top_p",
}


def _json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, None where it is missing; a damaged one is one line naming it."""
    if not path.is_file():
        return None
    with reading(path):
        value = json.loads(path.read_bytes())
        if not isinstance(value, dict):
            raise TypeError("not a JSON object")
    return value


def _token(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: its text, or {"content": text}."""
    return value.get("content") if isinstance(value, dict) else value


@dataclass
class Parts:
    """Where a model served by this runtime keeps what it is made of."""

    directory: Path
    config: dict[str, Any]  # config.json over CONFIG_DEFAULTS
    encoder_dir: Path
    encoder_config: dict[str, Any]
    decoder_dir: Path
    decoder_config: dict[str, Any]
    tokenizer_config: dict[str, Any]
    default_system: str  # the chat template's system turn when the model sets none


def find_parts(directory: Path) -> Parts | None:
    """The parts of the tiny-audio model in `directory` when this runtime serves it (Whisper
    encoder, a projector of PROJECTOR_TYPES, a Llama decoder with plain rotary positions in one
    safetensors file, SmolLM2's chat template, Whisper's own features), else None."""
    saved = _json(directory / "config.json")
    if saved is None or saved.get("model_type") != "tiny_audio" or zoo_resolve is None:
        return None
    config = CONFIG_DEFAULTS | saved
    features = _json(directory / "preprocessor_config.json") or {}
    tokenizer_config = _json(directory / "tokenizer_config.json") or {}
    if (
        config["projector_type"] not in PROJECTOR_TYPES
        or config["encoder_lora_rank"]
        or not (config.get("encoder_dim") and config.get("decoder_dim"))
        or any(features.get(key) != value for key, value in WHISPER_FEATURES.items())
        or features.get("dither", 0.0) != 0.0
        or features.get("do_normalize")
        or not (directory / "tokenizer.json").is_file()
        or not _token(tokenizer_config.get("eos_token"))
    ):
        return None
    default_system = _default_system(directory, tokenizer_config)
    encoder_dir = Path(zoo_resolve(config["audio_encoder"]))
    decoder_dir = Path(zoo_resolve(config["text_decoder"]))
    encoder_config = _json(encoder_dir / "config.json") or {}
    decoder_config = _json(decoder_dir / "config.json") or {}
    if (
        default_system is None
        or encoder_config.get("model_type") != "whisper"
        or encoder_config.get("activation_function", "gelu") != "gelu"
        or decoder_config.get("model_type") != "llama"
        or rope_theta(decoder_config) is None
        or decoder_config.get("hidden_act", "silu") != "silu"
        or decoder_config.get("attention_bias")
        or decoder_config.get("mlp_bias")
        or not (encoder_dir / WEIGHTS_NAME).is_file()
        or not (decoder_dir / WEIGHTS_NAME).is_file()  # one file, not shards
        or not float32_tensors(directory / WEIGHTS_NAME, "projector.")
        or not float32_tensors(encoder_dir / WEIGHTS_NAME, "model.encoder.")
        or not float32_tensors(decoder_dir / WEIGHTS_NAME, "model.layers.")
    ):
        return None
    return Parts(
        directory,
        config,
        encoder_dir,
        encoder_config,
        decoder_dir,
        decoder_config,
        tokenizer_config,
        default_system,
    )


def _default_system(directory: Path, tokenizer_config: dict[str, Any]) -> str | None:
    """The default system text of a SmolLM2 chat template; None for any other template."""
    file = directory / "chat_template.jinja"
    template = file.read_text() if file.is_file() else tokenizer_config.get("chat_template")
    if not isinstance(template, str):
        return None
    template = template.rstrip("\n")  # Jinja drops a template's last line break too
    if not (template.startswith(CHATML_HEAD) and template.endswith(CHATML_TAIL)):
        return None
    text = template[len(CHATML_HEAD) : len(template) - len(CHATML_TAIL)]
    return None if any(c in text for c in "'\\{}") else text


class LeanASR(WindowedRecognizer):
    """A tiny-audio model served by this runtime: the Recognizer interface of ASRModel
    (`transcribe`, `transcribe_segments`, `generate`) with its greedy fast form's text."""

    def __init__(self, parts: Parts, name: str) -> None:
        self.name = name
        self.parts = parts
        settings = parts.config
        self.config = SimpleNamespace(**settings)
        weights_file = parts.directory / WEIGHTS_NAME
        with reading(weights_file):
            trained = read_safetensors(weights_file)
        with reading(parts.decoder_dir / WEIGHTS_NAME):
            decoder_weights = read_safetensors(parts.decoder_dir / WEIGHTS_NAME)
        with reading(parts.encoder_dir / WEIGHTS_NAME):
            encoder_weights = read_safetensors(parts.encoder_dir / WEIGHTS_NAME)
        self.trained_count = sum(tensor.numel() for tensor in trained.values())
        self.projector = self._projector(trained, weights_file)
        _merge_lora(decoder_weights, trained, settings, weights_file)
        self.encoder = WhisperEncoder(
            encoder_weights, parts.encoder_config, settings["encoder_pad_to_window"]
        )
        self.decoder = LlamaDecoder(decoder_weights, parts.decoder_config)

        self.tokenizer = Tokenizer.from_file(str(parts.directory / "tokenizer.json"))
        audio_token = settings["audio_token"]
        if self.tokenizer.token_to_id(audio_token) is None:
            self.tokenizer.add_special_tokens([audio_token])
        self.audio_id = self._token_id(audio_token)
        eos = self._token_id(parts.tokenizer_config["eos_token"])
        pad = parts.tokenizer_config.get("pad_token")
        self.pad_id = eos if pad is None else self._token_id(pad)
        vocabulary = self.tokenizer.decode_batch(
            [[i] for i in range(self.tokenizer.get_vocab_size(with_added_tokens=True))],
            skip_special_tokens=False,
        )
        self.stop_ids = set(stop_tokens([*self._decoder_eos_ids(), eos], vocabulary))
        self._prompts: dict[str | None, tuple[list[int], list[int]]] = {}
        self._prefixes: dict[tuple[int, ...], KVCache] = {}
        self._hugging_face: Any = None

    def _token_id(self, token: Any) -> int:
        found = self.tokenizer.token_to_id(str(_token(token)))
        if found is None:
            raise UserError(f"{self.parts.directory}: tokenizer has no {token!r}")
        return int(found)

    def _decoder_eos_ids(self) -> list[int | None]:
        generation = _json(self.parts.decoder_dir / "generation_config.json")
        ids = (generation or self.parts.decoder_config).get("eos_token_id")
        return ids if isinstance(ids, list) else [ids]

    def _projector(self, trained: dict[str, torch.Tensor], weights_file: Path) -> Projector:
        """The projector of projectors.py, its parameters the file's own tensors."""
        with torch.device("meta"):  # shapes only: the weights come from the file
            projector = build_projector(SimpleNamespace(**self.parts.config))  # type: ignore[arg-type]
        prefix = "projector."
        weights = {k.removeprefix(prefix): v for k, v in trained.items() if k.startswith(prefix)}
        mismatch = f"{weights_file} does not match {self.parts.directory / 'config.json'}"
        try:
            projector.load_state_dict(weights, assign=True)
        except RuntimeError as error:  # shaped otherwise than the config builds it
            raise UserError(f"{mismatch}: {str(error).splitlines()[-1].strip()}") from None
        return projector.requires_grad_(False).eval()

    def num_trainable_parameters(self) -> int:
        return self.trained_count

    # ---- the prompt ---------------------------------------------------------------------------

    def prompt_ids(self, prompt: str | None) -> tuple[list[int], list[int]]:
        """Token ids before and after the audio in the chat-formatted user turn, as
        ASRModel._prompt_template makes them from the chat template."""
        if prompt not in self._prompts:
            settings = self.parts.config
            audio_token = settings["audio_token"]
            content = (f"{prompt}\n" if prompt else "") + settings["user_prompt"] + audio_token
            system = settings["system_prompt"] or self.parts.default_system
            text = (
                f"<|im_start|>system\n{system}<|im_end|>\n"
                f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
            )
            before, after = text.split(audio_token)
            self._prompts[prompt] = (
                self.tokenizer.encode(before, add_special_tokens=False).ids,
                self.tokenizer.encode(after, add_special_tokens=False).ids,
            )
        return self._prompts[prompt]

    def _prefix(self, ids: list[int]) -> KVCache:
        """Keys and values of the prompt's text before the audio, computed once per text."""
        key = tuple(ids)
        if key not in self._prefixes:
            embeds = F.embedding(torch.tensor([ids]), self.decoder.embed)
            positions = torch.arange(len(ids))[None]
            self._prefixes[key] = self.decoder.forward(embeds, positions, None, None)[1]
        return self._prefixes[key]

    # ---- generation -------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        input_features: torch.Tensor,
        feature_lengths: torch.Tensor,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        repetition_guard: bool = True,
    ) -> list[list[int]]:
        """New token ids for each clip (without the prompt, stop token or padding), greedy."""
        audio, audio_mask = self.projector(*self.encoder(input_features, feature_lengths))
        before, after = self.prompt_ids(prompt)
        at = len(before)
        rows = [before + [self.audio_id] * int(n) + after for n in audio_mask.sum(dim=1)]
        longest = max(len(ids) for ids in rows)
        # Padded between the text before the audio and the audio, as build_text_inputs pads.
        input_ids = torch.tensor(
            [ids[:at] + [self.pad_id] * (longest - len(ids)) + ids[at:] for ids in rows]
        )
        attention = torch.tensor(
            [[1] * at + [0] * (longest - len(ids)) + [1] * (len(ids) - at) for ids in rows]
        )
        new_ids = input_ids[:, at:]
        is_audio = new_ids == self.audio_id
        embeds = F.embedding(new_ids.masked_fill(is_audio, 0), self.decoder.embed)
        embeds = embeds.masked_scatter(is_audio[..., None], audio[audio_mask].to(embeds.dtype))
        positions = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 0)[:, at:]
        if max_new_tokens is None:  # room for fast speech: ~6 tokens per second of audio
            seconds = float(feature_lengths.max()) * HOP_LENGTH / SAMPLE_RATE
            max_new_tokens = min(448, math.ceil(6 * seconds) + 16)
        return self._decode(embeds, positions, attention, before, max_new_tokens, repetition_guard)

    def _decode(
        self,
        embeds: torch.Tensor,
        positions: torch.Tensor,
        attention: torch.Tensor,
        before: list[int],
        max_new_tokens: int,
        repetition_guard: bool,
    ) -> list[list[int]]:
        """Greedy steps from the prompt's embeddings after `before` (its keys and values
        cached), as transformers' generate takes them: a finished row is fed the pad token
        until every row is done."""
        batch = embeds.shape[0]
        padding = None if bool(attention.all()) else attention.bool()
        past: KVCache = [
            (keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1))
            for keys, values in self._prefix(before)
        ]
        guard = LoopGuard()
        tokens: list[list[int]] = [[] for _ in range(batch)]
        running = [True] * batch
        while True:
            mask = causal_mask(
                padding, batch, embeds.shape[1], past[0][0].shape[-2] + embeds.shape[1]
            )
            hidden, past = self.decoder.forward(embeds, positions, mask, past)
            chosen = self.decoder.logits(hidden).argmax(dim=-1).tolist()
            for row, token in enumerate(chosen):
                tokens[row].append(token if running[row] else self.pad_id)
                running[row] = running[row] and not (
                    token in self.stop_ids
                    or len(tokens[row]) >= max_new_tokens
                    or (repetition_guard and guard.looping_period(tokens[row]) is not None)
                )
            if not any(running):
                break
            embeds = F.embedding(torch.tensor([row[-1:] for row in tokens]), self.decoder.embed)
            positions = positions[:, -1:] + 1
            if padding is not None:
                padding = torch.cat([padding, padding.new_ones((batch, 1))], dim=-1)
        results = []
        for made in tokens:
            ended = next((i for i, token in enumerate(made) if token in self.stop_ids), len(made))
            results.append(guard.trim(made[:ended]) if repetition_guard else made[:ended])
        return results

    # ---- transcription ----------------------------------------------------------------------

    def transcribe_segments(
        self,
        waveforms: list[np.ndarray],
        batch_size: int = 8,
        chunk_length_s: float | None = None,
        stride_length_s: float | tuple[float, float] | None = None,
        prompt: str | None = None,
        vad: bool = True,
        **generate_options: Any,
    ) -> list[list[Segment]]:
        """ASRModel.transcribe_segments: timed text segments for each waveform, one per window
        of long audio. Beam search, sampling and options unknown here go to the HF form."""
        greedy = generate_options.get("num_beams", 1) == 1 and not generate_options.get("do_sample")
        if not greedy or not set(generate_options) <= GREEDY_OPTIONS:
            return self.hugging_face().transcribe_segments(
                waveforms,
                batch_size,
                chunk_length_s,
                stride_length_s,
                prompt,
                vad,
                **generate_options,
            )
        options = {
            key: generate_options[key]
            for key in ("max_new_tokens", "repetition_guard")
            if key in generate_options
        }

        def transcribe_clips(clips: list[np.ndarray]) -> list[str]:
            features, lengths = batch_log_mel(clips)
            token_rows = self.generate(features, lengths, prompt, **options)
            return [
                self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
                for tokens in token_rows
            ]

        return transcribe_windows(
            waveforms,
            transcribe_clips,
            float(self.parts.config["max_audio_seconds"]),
            batch_size,
            chunk_length_s,
            stride_length_s,
            vad,
        )

    def hugging_face(self) -> Any:
        """The fast form of ASRModel for what this runtime does not serve, loaded once."""
        if self._hugging_face is None:
            from .modeling import ASRModel

            self._hugging_face = ASRModel.from_pretrained(str(self.parts.directory), fast=True)
        return self._hugging_face


def _merge_lora(
    decoder: dict[str, torch.Tensor],
    trained: dict[str, torch.Tensor],
    config: dict[str, Any],
    weights_file: Path,
) -> None:
    """Add each adapted layer's LoRA update, (B @ A) * alpha / rank, to its weight in place,
    as peft's merge does; the file must hold exactly the adapters (and heads) the config
    names."""
    rank = int(config["lora_rank"])
    targets = set(config["lora_target_modules"]) if rank else set()
    prefix, suffix_a, suffix_b = (
        "decoder.base_model.model.",
        ".lora_A.default.weight",
        ".lora_B.default.weight",
    )
    modules = [
        name.removesuffix(".weight")
        for name, tensor in decoder.items()
        if name.endswith(".weight")
        and tensor.dim() == 2
        and name.removesuffix(".weight").rsplit(".", 1)[-1] in targets
    ]
    expected = {
        f"{prefix}{module}{suffix}" for module in modules for suffix in (suffix_a, suffix_b)
    }
    found = {name for name in trained if not name.startswith(("projector.", "ctc_head."))}
    if config["ctc_weight"] <= 0:
        found |= {name for name in trained if name.startswith("ctc_head.")}
    unexpected, missing = sorted(found - expected), sorted(expected - found)
    if unexpected or missing:
        raise UserError(
            f"{weights_file} does not match {weights_file.parent / 'config.json'} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    scaling = config["lora_alpha"] / rank if rank else 0.0
    for module in modules:
        a, b = trained[prefix + module + suffix_a], trained[prefix + module + suffix_b]
        weight = decoder[module + ".weight"]
        if a.shape != (rank, weight.shape[1]) or b.shape != (weight.shape[0], rank):
            raise UserError(
                f"{weights_file} does not match {weights_file.parent / 'config.json'} "
                f"(LoRA of {module} is not of rank {rank})"
            )
        weight += (b @ a) * scaling


def from_pretrained(path: str, fast: bool = True, **kwargs: Any) -> Any:
    """A tiny-audio model folder as a recognizer: this runtime where it serves the model and
    the fast form is asked for, else ASRModel (its fast form, or with `fast=False` the exact
    fp32 one that training uses)."""
    parts = find_parts(Path(path)) if fast and not kwargs else None
    if parts is not None:
        return LeanASR(parts, path)
    from .modeling import ASRModel

    return ASRModel.from_pretrained(path, fast=fast, **kwargs)
