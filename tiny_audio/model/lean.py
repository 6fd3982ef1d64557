"""The lean runtime of a tiny-audio model: Whisper encoder -> mlp projector -> Llama decoder
(SmolLM2) read straight from their safetensors files, with numpy and tokenizers only.

Why: importing torch, transformers and peft and building their modules is most of a cold
`ta transcribe` (seconds, and hundreds of MB). This runtime computes in numpy, float32, what the
fast form of ASRModel (`prepare_for_inference`) computes, so that its greedy tokens are the same
(to float rounding, which rarely picks another token): the log-mel of features.py, the Whisper
encoder on each clip's real length (its conv mask) or inside the 30 s window
(`encoder_pad_to_window`), the mlp projector of projectors.py, the chat prompt with <audio>
positions, LoRA merged into the decoder's weights as peft merges it, the prompt's text before
the audio computed once per prompt, batches padded between that text and the audio, and
attention masked as transformers masks it. Weights are memory-mapped copy-on-write: a page is
read when used, and merging LoRA copies only the pages it writes.

It serves greedy decoding; beam search and sampling are handed to the Hugging Face form, loaded
(with torch) when first asked for. Nothing here imports torch, transformers or peft.
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
from tokenizers import Tokenizer

from .features import HOP_LENGTH, SAMPLE_RATE, batch_log_mel
from .numeric import conv1d, gelu, layer_norm, length_mask, linear, rms_norm, silu, softmax
from .windows import Segment, WindowedRecognizer

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

Weights = dict[str, np.ndarray]


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
    Hugging Face form computes in float32, and so does this runtime, on the file's own bytes)."""
    with reading(path), open(path, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    header.pop("__metadata__", None)
    return any(name.startswith(prefix) for name in header) and all(
        entry["dtype"] == "F32" for entry in header.values()
    )


def read_safetensors(path: Path) -> Weights:
    """Every tensor of a float32 safetensors file as a view of one private memory map of it: a
    page is read when first used, and writing one copies that page alone (the file never
    changes). The arrays keep the map alive."""
    with open(path, "rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    header_size = int.from_bytes(mapped[:8], "little")
    header = json.loads(mapped[8 : 8 + header_size])
    header.pop("__metadata__", None)
    arrays = {}
    for name, entry in header.items():
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]
        count = math.prod(shape)
        if (
            entry["dtype"] != "F32"
            or end - begin != 4 * count
            or 8 + header_size + end > len(mapped)
        ):
            raise ValueError(f"{name}: bytes {begin}..{end} do not hold float32 {list(shape)}")
        arrays[name] = (
            np.frombuffer(mapped, np.float32, count, offset=8 + header_size + begin)
            if count
            else np.zeros(0, np.float32)
        ).reshape(shape)
    return arrays


def _linear(x: np.ndarray, weights: Weights, name: str) -> np.ndarray:
    return linear(x, weights[f"{name}.weight"], weights.get(f"{name}.bias"))


def _with_prefix(weights: Weights, prefix: str) -> Weights:
    return {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}


def _masked_scores(mask: np.ndarray) -> np.ndarray:
    """A bool mask (True where a query may attend) as scores to add: 0, or -inf."""
    return np.where(mask, np.float32(0.0), np.float32(-np.inf))


class WhisperEncoder:
    """WhisperAudioEncoder (encoders.py) of a WhisperModel's `model.encoder.*` weights."""

    def __init__(self, weights: Weights, config: dict[str, Any], pad_to_window: bool) -> None:
        self.weights = _with_prefix(weights, "model.encoder.")
        self.heads = int(config["encoder_attention_heads"])
        self.num_layers = int(config["encoder_layers"])
        self.max_frames = int(config["max_source_positions"])
        self.pad_to_window = pad_to_window

    @staticmethod
    def output_lengths(feature_lengths: np.ndarray) -> np.ndarray:
        return (feature_lengths - 1) // 2 + 1  # conv2 has stride 2, kernel 3, padding 1

    def __call__(
        self, features: np.ndarray, feature_lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features (B, N_MELS, T) and their lengths -> frames (B, T', D) and their mask."""
        if self.pad_to_window:
            return self._window(features, feature_lengths)
        w = self.weights
        # Time-major from here on: (B, T, channels), as the layers want it.
        hidden = gelu(conv1d(features.transpose(0, 2, 1), w["conv1.weight"], w["conv1.bias"]))
        # Zero conv1's output past each clip's end so conv2 sees what a lone clip would.
        hidden *= length_mask(feature_lengths, hidden.shape[1])[..., None]
        hidden = gelu(conv1d(hidden, w["conv2.weight"], w["conv2.bias"], stride=2))
        if hidden.shape[1] > self.max_frames:
            raise ValueError(f"audio longer than the encoder's {self.max_frames} frames; chunk it")
        hidden += w["embed_positions.weight"][: hidden.shape[1]]
        mask = length_mask(self.output_lengths(feature_lengths), hidden.shape[1])
        return self._layers(hidden, _masked_scores(mask)[:, None, None, :]), mask

    def _window(
        self, features: np.ndarray, feature_lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each clip in a full window of silence; the frames past the longest clip are dropped."""
        window_features = 2 * self.max_frames
        batch, mels, frames = features.shape
        if frames > window_features:
            raise ValueError(f"audio longer than the encoder's {self.max_frames} frames; chunk it")
        real = length_mask(feature_lengths, frames)[:, None, :]
        silence = np.where(real, features, -np.inf).max(axis=(1, 2), keepdims=True)
        silence -= SILENCE_BELOW_PEAK
        window = np.empty((batch, mels, window_features), np.float32)
        window[...] = silence
        window[..., :frames] = np.where(real, features, silence)
        w = self.weights
        hidden = gelu(conv1d(window.transpose(0, 2, 1), w["conv1.weight"], w["conv1.bias"]))
        hidden = gelu(conv1d(hidden, w["conv2.weight"], w["conv2.bias"], stride=2))
        hidden = self._layers(hidden + w["embed_positions.weight"], None)
        lengths = self.output_lengths(feature_lengths)
        longest = int(lengths.max())
        return hidden[:, :longest], length_mask(lengths, longest)

    def _layers(self, hidden: np.ndarray, masked: np.ndarray | None) -> np.ndarray:
        """Pre-norm transformer layers; `masked` (B, 1, 1, T) is added to attention scores."""
        w = self.weights
        for i in range(self.num_layers):
            layer = f"layers.{i}."
            normed = layer_norm(
                hidden,
                w[layer + "self_attn_layer_norm.weight"],
                w[layer + "self_attn_layer_norm.bias"],
            )
            hidden = hidden + self._attention(normed, layer + "self_attn.", masked)
            normed = layer_norm(
                hidden, w[layer + "final_layer_norm.weight"], w[layer + "final_layer_norm.bias"]
            )
            hidden += _linear(gelu(_linear(normed, w, layer + "fc1")), w, layer + "fc2")
        return layer_norm(hidden, w["layer_norm.weight"], w["layer_norm.bias"])

    def _attention(self, x: np.ndarray, prefix: str, masked: np.ndarray | None) -> np.ndarray:
        batch, frames, width = x.shape
        head_dim = width // self.heads
        w = self.weights

        def heads(name: str) -> np.ndarray:  # (B, T, D) -> (B, heads, T, head_dim)
            projected = _linear(x, w, prefix + name)
            return projected.reshape(batch, frames, self.heads, head_dim).transpose(0, 2, 1, 3)

        # Whisper scales the queries, then attends with scale 1.
        query, key, value = (
            heads("q_proj") * np.float32(head_dim**-0.5),
            heads("k_proj"),
            heads("v_proj"),
        )
        out = np.empty((batch, self.heads, frames, head_dim), np.float32)
        for row in range(batch):  # one clip at a time: a 30 s clip's scores are 9 MB a head
            scores = query[row] @ key[row].transpose(0, 2, 1)
            if masked is not None:
                scores += masked[row]
            out[row] = softmax(scores) @ value[row]
        return _linear(
            out.transpose(0, 2, 1, 3).reshape(batch, frames, width), w, prefix + "out_proj"
        )


class MLPProjector:
    """projectors.py's MLPProjector of a checkpoint's `projector.*` weights: k frames stacked,
    then Linear -> RMSNorm -> GELU -> Linear, then the output RMSNorm."""

    def __init__(self, weights: Weights, config: dict[str, Any], mismatch: str) -> None:
        """`mismatch`: the start of the one-line error for weights shaped otherwise."""
        self.k = int(config["projector_pool_stride"])
        hidden, output = int(config["projector_hidden_dim"]), int(config["decoder_dim"])
        shapes = {
            "body.0.weight": (hidden, int(config["encoder_dim"]) * self.k),
            "body.0.bias": (hidden,),
            "body.1.weight": (hidden,),
            "body.4.weight": (output, hidden),
            "body.4.bias": (output,),
            "output_norm.weight": (output,),
        }
        self.weights = _with_prefix(weights, "projector.")
        for name in sorted(shapes.keys() | self.weights.keys()):
            found = self.weights[name].shape if name in self.weights else None
            if found != shapes.get(name):
                raise UserError(
                    f"{mismatch}: projector.{name} is {found and list(found)}, "
                    f"not {list(shapes[name]) if name in shapes else None}"
                )

    def __call__(self, hidden: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames (B, T, D) and their mask -> embeddings (B, T', decoder width) and theirs."""
        batch, frames, width = hidden.shape
        hidden = hidden * mask[..., None]  # padded frames zeroed before stacking
        if frames < self.k:
            hidden = np.pad(hidden, ((0, 0), (0, self.k - frames), (0, 0)))
            frames = self.k
        out_frames = (frames - self.k) // self.k + 1
        stacked = hidden[:, : out_frames * self.k].reshape(batch, out_frames, self.k * width)
        lengths = np.maximum((mask.sum(axis=1) - self.k) // self.k + 1, 1)
        w = self.weights
        x = rms_norm(linear(stacked, w["body.0.weight"], w["body.0.bias"]), w["body.1.weight"])
        x = linear(gelu(x), w["body.4.weight"], w["body.4.bias"])
        return rms_norm(x, w["output_norm.weight"]), length_mask(lengths, out_frames)


class KVCache:
    """Each decoder layer's keys and values, (B, key heads, capacity, head_dim), filled up to
    `length` positions. Written in place as decoding goes; pages past what is written are
    never touched, so a generous capacity costs no memory."""

    def __init__(self, layers: int, batch: int, heads: int, capacity: int, head_dim: int) -> None:
        shape = (batch, heads, capacity, head_dim)
        self.keys = [np.empty(shape, np.float32) for _ in range(layers)]
        self.values = [np.empty(shape, np.float32) for _ in range(layers)]
        self.length = 0

    def extended(self, batch: int, capacity: int) -> KVCache:
        """A cache for `batch` rows, each starting with this one-row cache's positions."""
        layers, (_, heads, _, head_dim) = len(self.keys), self.keys[0].shape
        cache = KVCache(layers, batch, heads, capacity, head_dim)
        for mine, theirs in zip(self.keys + self.values, cache.keys + cache.values, strict=True):
            theirs[:, :, : self.length] = mine[:, :, : self.length]
        cache.length = self.length
        return cache


class LlamaDecoder:
    """A LlamaForCausalLM (RMSNorm, rotary positions, grouped-query attention, SwiGLU) of its
    `model.*` weights, computed as transformers computes it."""

    def __init__(self, weights: Weights, config: dict[str, Any]) -> None:
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
        exponents = np.arange(0, self.head_dim, 2, dtype=np.float32) / self.head_dim
        self.inv_freq = (1.0 / np.float32(theta) ** exponents).astype(np.float32)

    def cache(self, batch: int, capacity: int) -> KVCache:
        return KVCache(self.num_layers, batch, self.kv_heads, capacity, self.head_dim)

    def forward(
        self, embeds: np.ndarray, positions: np.ndarray, mask: np.ndarray | None, cache: KVCache
    ) -> np.ndarray:
        """The final hidden states (B, T, D) of embeddings after the cache's positions, whose
        keys and values are added to it. `mask`: (B, T, cache.length + T) bool, True where a
        query may attend; None where every query may attend every key before it."""
        freqs = positions[..., None].astype(np.float32) * self.inv_freq
        angles = np.concatenate((freqs, freqs), axis=-1)[:, None]  # (B, 1, T, head_dim)
        cos, sin = np.cos(angles), np.sin(angles)
        queries = embeds.shape[1]
        start, end = cache.length, cache.length + queries
        if mask is None and queries > 1:  # each query sees the cache and itself, not later ones
            mask = causal_mask(np.ones((len(embeds), end), bool), queries)
        masked = None if mask is None else _masked_scores(mask)[:, None, None]
        hidden = embeds
        for i in range(self.num_layers):
            layer = f"model.layers.{i}."
            x = rms_norm(hidden, self.weights[layer + "input_layernorm.weight"], self.eps)
            query, keys, values = self._projections(x, layer + "self_attn.", cos, sin)
            cache.keys[i][:, :, start:end] = keys
            cache.values[i][:, :, start:end] = values
            attended = self._attend(
                query, cache.keys[i][:, :, :end], cache.values[i][:, :, :end], masked
            )
            hidden = hidden + _linear(attended, self.weights, layer + "self_attn.o_proj")
            x = rms_norm(hidden, self.weights[layer + "post_attention_layernorm.weight"], self.eps)
            gated = silu(_linear(x, self.weights, layer + "mlp.gate_proj"))
            gated *= _linear(x, self.weights, layer + "mlp.up_proj")
            hidden += _linear(gated, self.weights, layer + "mlp.down_proj")
        cache.length = end
        return rms_norm(hidden, self.weights["model.norm.weight"], self.eps)

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        """(B, V) scores of the next token after the last position."""
        return hidden[:, -1] @ self.lm_head.T

    def _projections(
        self, x: np.ndarray, prefix: str, cos: np.ndarray, sin: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Queries (B, heads, T, head_dim) and keys and values (B, key heads, T, head_dim),
        queries and keys turned by their positions."""

        def heads(name: str) -> np.ndarray:
            projected = _linear(x, self.weights, prefix + name)
            return projected.reshape(*x.shape[:2], -1, self.head_dim).transpose(0, 2, 1, 3)

        return (
            _rotate(heads("q_proj"), cos, sin),
            _rotate(heads("k_proj"), cos, sin),
            heads("v_proj"),
        )

    def _attend(
        self, query: np.ndarray, keys: np.ndarray, values: np.ndarray, masked: np.ndarray | None
    ) -> np.ndarray:
        """Grouped-query attention: the query heads sharing a key head are stacked as more
        queries of it, so that each key head is one matrix product and never copied.
        `masked`: (B, 1, 1, T, K) scores to add, or None."""
        batch, heads, length, head_dim = query.shape
        groups = heads // self.kv_heads
        stacked = query.reshape(batch, self.kv_heads, groups * length, head_dim)
        scores = (stacked * np.float32(head_dim**-0.5)) @ keys.transpose(0, 1, 3, 2)
        if masked is not None:
            grouped = scores.reshape(batch, self.kv_heads, groups, length, -1)
            grouped += masked
        out = softmax(scores) @ values  # (B, key heads, groups * T, head_dim)
        return (
            out.reshape(batch, heads, length, head_dim)
            .transpose(0, 2, 1, 3)
            .reshape(batch, length, heads * head_dim)
        )


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotary positions: each half of the head turned against the other."""
    half = x.shape[-1] // 2
    turned = np.concatenate((-x[..., half:], x[..., :half]), axis=-1)
    turned *= sin
    return x * cos + turned


def rope_theta(config: dict[str, Any]) -> float | None:
    """The rotary base of plain (unscaled) rotary positions; None for any other kind."""
    rope = config.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default" or config.get("rope_scaling"):
        return None
    theta = rope.get("rope_theta", config.get("rope_theta"))
    return None if theta is None else float(theta)


def causal_mask(real: np.ndarray, queries: int) -> np.ndarray:
    """(B, queries, K) bool for the last `queries` of K positions: each may attend itself and
    the positions before it that `real` (B, K) marks True (not padding)."""
    keys = real.shape[1]
    query_at = np.arange(keys - queries, keys)
    return (np.arange(keys)[None, :] <= query_at[:, None])[None] & real[:, None, :]


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
        self.trained_count = sum(array.size for array in trained.values())
        self.projector = MLPProjector(
            trained, settings, f"{weights_file} does not match {parts.directory / 'config.json'}"
        )
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

    def num_trainable_parameters(self) -> int:
        return self.trained_count

    # ---- the prompt ---------------------------------------------------------------------------

    def prompt_ids(self, prompt: str | None) -> tuple[list[int], list[int]]:
        """Token ids before and after the audio in the chat-formatted user turn, as
        ASRProcessor.prompt_ids makes them from the chat template."""
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
            cache = self.decoder.cache(1, len(ids))
            self.decoder.forward(self.decoder.embed[[ids]], np.arange(len(ids))[None], None, cache)
            self._prefixes[key] = cache
        return self._prefixes[key]

    # ---- generation -------------------------------------------------------------------------

    def generate(
        self,
        input_features: np.ndarray,
        feature_lengths: np.ndarray,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        repetition_guard: bool = True,
    ) -> list[list[int]]:
        """New token ids for each clip (without the prompt, stop token or padding), greedy.
        `input_features` (B, N_MELS, T) and `feature_lengths` (B,) as batch_log_mel makes them
        (or torch tensors of them)."""
        features = np.asarray(input_features, dtype=np.float32)
        feature_lengths = np.asarray(feature_lengths)
        audio, audio_mask = self.projector(*self.encoder(features, feature_lengths))
        before, after = self.prompt_ids(prompt)
        at = len(before)
        rows = [before + [self.audio_id] * int(n) + after for n in audio_mask.sum(axis=1)]
        longest = max(len(ids) for ids in rows)
        # Padded between the text before the audio and the audio, as ASRProcessor.text_inputs pads.
        input_ids = np.array(
            [ids[:at] + [self.pad_id] * (longest - len(ids)) + ids[at:] for ids in rows]
        )
        attention = np.array(
            [[1] * at + [0] * (longest - len(ids)) + [1] * (len(ids) - at) for ids in rows]
        )
        new_ids = input_ids[:, at:]
        is_audio = new_ids == self.audio_id
        embeds = self.decoder.embed[np.where(is_audio, 0, new_ids)]
        embeds[is_audio] = audio[audio_mask]
        positions = np.where(attention == 0, 0, attention.cumsum(-1) - 1)[:, at:]
        if max_new_tokens is None:  # room for fast speech: ~6 tokens per second of audio
            seconds = float(feature_lengths.max()) * HOP_LENGTH / SAMPLE_RATE
            max_new_tokens = min(448, math.ceil(6 * seconds) + 16)
        return self._decode(embeds, positions, attention, before, max_new_tokens, repetition_guard)

    def _decode(
        self,
        embeds: np.ndarray,
        positions: np.ndarray,
        attention: np.ndarray,
        before: list[int],
        max_new_tokens: int,
        repetition_guard: bool,
    ) -> list[list[int]]:
        """Greedy steps from the prompt's embeddings after `before` (its keys and values
        cached), as transformers' generate takes them: a finished row is fed the pad token
        until every row is done."""
        batch, length = embeds.shape[:2]
        prefix = self._prefix(before)
        cache = prefix.extended(batch, prefix.length + length + max_new_tokens)
        # Which cached positions are real, not padding: the prompt's, then every new token.
        real = np.ones((batch, cache.keys[0].shape[2]), bool)
        real[:, : attention.shape[1]] = attention.astype(bool)
        padded = not real.all()
        guard = LoopGuard()
        tokens: list[list[int]] = [[] for _ in range(batch)]
        running = [True] * batch
        while True:
            keys = cache.length + embeds.shape[1]
            mask = causal_mask(real[:, :keys], embeds.shape[1]) if padded else None
            hidden = self.decoder.forward(embeds, positions, mask, cache)
            chosen = self.decoder.logits(hidden).argmax(axis=-1).tolist()
            for row, token in enumerate(chosen):
                tokens[row].append(token if running[row] else self.pad_id)
                running[row] = running[row] and not (
                    token in self.stop_ids
                    or len(tokens[row]) >= max_new_tokens
                    or (repetition_guard and guard.looping_period(tokens[row]) is not None)
                )
            if not any(running):
                break
            embeds = self.decoder.embed[[row[-1:] for row in tokens]]
            positions = positions[:, -1:] + 1
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
        return super().transcribe_segments(
            waveforms, batch_size, chunk_length_s, stride_length_s, prompt, vad, **generate_options
        )

    def transcribe_clips(
        self, clips: list[np.ndarray], prompt: str | None, **generate_options: Any
    ) -> list[str]:
        """Greedy text of each clip; of GREEDY_OPTIONS, the ones generate acts on."""
        options = {
            key: generate_options[key]
            for key in ("max_new_tokens", "repetition_guard")
            if key in generate_options
        }
        features, lengths = batch_log_mel(clips)
        token_rows = self.generate(features, lengths, prompt, **options)
        return [
            self.tokenizer.decode(tokens, skip_special_tokens=True).strip() for tokens in token_rows
        ]

    def hugging_face(self) -> Any:
        """The fast form of ASRModel for what this runtime does not serve, loaded once."""
        if self._hugging_face is None:
            from .modeling import ASRModel

            self._hugging_face = ASRModel.from_pretrained(str(self.parts.directory), fast=True)
        return self._hugging_face


def _merge_lora(
    decoder: Weights,
    trained: Weights,
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
        and tensor.ndim == 2
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
