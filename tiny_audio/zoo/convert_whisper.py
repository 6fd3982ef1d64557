"""CTranslate2 Whisper (model.bin + config.json + tokenizer.json) -> a transformers
WhisperForConditionalGeneration folder: safetensors, tokenizer, feature extractor and a
generation config that transcribes English."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tiny_audio.zoo.ctranslate2_format import read_model_bin

if TYPE_CHECKING:
    from transformers import GenerationConfig, WhisperConfig, WhisperTokenizer

# CTranslate2 sub-module -> transformers sub-module inside one encoder or decoder layer.
LAYER_MODULES: dict[str, str] = {
    "self_attention/layer_norm": "self_attn_layer_norm",
    "self_attention/linear_1": "self_attn.out_proj",
    "attention/layer_norm": "encoder_attn_layer_norm",
    "attention/linear_0": "encoder_attn.q_proj",
    "attention/linear_2": "encoder_attn.out_proj",
    "ffn/layer_norm": "final_layer_norm",
    "ffn/linear_0": "fc1",
    "ffn/linear_1": "fc2",
}
# Fused projections: CTranslate2 stacks them along the output dimension.
FUSED_MODULES: dict[str, tuple[str, ...]] = {
    "self_attention/linear_0": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "attention/linear_1": ("encoder_attn.k_proj", "encoder_attn.v_proj"),
}
# Whole-stack modules (prefix already "encoder/" or "decoder/").
STACK_MODULES: dict[str, str] = {
    "conv1": "conv1",
    "conv2": "conv2",
    "layer_norm": "layer_norm",
    "embeddings": "embed_tokens",
}
PARAMETER_NAMES: dict[str, str] = {
    "gamma": "weight",
    "beta": "bias",
    "weight": "weight",
    "bias": "bias",
}
# OpenAI's rule: English-only Whisper models have 51864 tokens, multilingual ones more.
MULTILINGUAL_VOCAB_SIZE = 51865
LAYER_PATTERN = re.compile(r"(encoder|decoder)/layer_(\d+)/(.+)/(\w+)$")
STACK_PATTERN = re.compile(r"(encoder|decoder)/(\w+)/(\w+)$")


def whisper_state_dict(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """transformers parameter name -> float32 array for every CTranslate2 weight."""
    state: dict[str, np.ndarray] = {}
    for name, array in variables.items():
        if array.ndim == 0 or name == "decoder/projection/weight":  # config value, or tied output
            continue
        weights = array.astype(np.float32)
        if name.endswith("position_encodings/encodings"):
            state[f"model.{name.split('/')[0]}.embed_positions.weight"] = weights
            continue
        layer = LAYER_PATTERN.match(name)
        if layer:
            stack, index, module, parameter = layer.groups()
            prefix = f"model.{stack}.layers.{index}"
            suffix = PARAMETER_NAMES[parameter]
            if module in FUSED_MODULES:
                targets = FUSED_MODULES[module]
                for target, part in zip(targets, np.split(weights, len(targets)), strict=True):
                    if target.endswith("k_proj") and suffix == "bias":
                        if np.any(part):  # Whisper's key projection has no bias
                            raise ValueError(f"{name}: non-zero key bias")
                        continue
                    state[f"{prefix}.{target}.{suffix}"] = part
            else:
                state[f"{prefix}.{LAYER_MODULES[module]}.{suffix}"] = weights
            continue
        stack_match = STACK_PATTERN.match(name)
        if not stack_match or stack_match.group(2) not in STACK_MODULES:
            raise ValueError(f"unexpected CTranslate2 Whisper variable {name}")
        stack, module, parameter = stack_match.groups()
        state[f"model.{stack}.{STACK_MODULES[module]}.{PARAMETER_NAMES[parameter]}"] = weights
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    return state


def _num_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    indices = {match.group(2) for match in map(LAYER_PATTERN.match, variables) if match}
    return len(
        {index for index in indices if f"{stack}/layer_{index}/ffn/linear_0/weight" in variables}
    )


def convert_whisper(source: Path, destination: Path) -> None:
    """Write a transformers Whisper folder for the CTranslate2 model in `source`."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    spec, variables = read_model_bin(source / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{source}: a {spec}, not a Whisper model")
    ct2_config = json.loads((source / "config.json").read_text())
    tokenizer = WhisperTokenizer(tokenizer_file=str(source / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    end_of_text, start_of_transcript = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]

    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    multilingual = vocab_size >= MULTILINGUAL_VOCAB_SIZE
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_num_layers(variables, "encoder"),
        decoder_layers=_num_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        bos_token_id=end_of_text,
        eos_token_id=end_of_text,
        pad_token_id=end_of_text,
        decoder_start_token_id=start_of_transcript,
        begin_suppress_tokens=None,  # decoding settings live in the generation config only
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    state = {name: torch.from_numpy(array) for name, array in whisper_state_dict(variables).items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    model.generation_config = _generation_config(config, ct2_config, tokenizer, multilingual)
    model.save_pretrained(destination)

    if multilingual:
        tokenizer.set_prefix_tokens(language="english", task="transcribe")
    tokenizer.pad_token = "<|endoftext|>"
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(
        destination
    )


def _generation_config(
    config: WhisperConfig, ct2_config: dict, tokenizer: WhisperTokenizer, multilingual: bool
) -> GenerationConfig:
    """Whisper's own decoding settings; multilingual models default to English transcription."""
    from transformers import GenerationConfig

    vocab = tokenizer.get_vocab()
    settings = dict(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        alignment_heads=ct2_config["alignment_heads"],
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        no_timestamps_token_id=vocab["<|notimestamps|>"],
        prev_sot_token_id=vocab["<|startofprev|>"],
        max_initial_timestamp_index=50,
        return_timestamps=False,
        is_multilingual=multilingual,
    )
    if multilingual:
        languages = tokenizer.convert_ids_to_tokens(ct2_config["lang_ids"])
        settings.update(
            lang_to_id=dict(zip(languages, ct2_config["lang_ids"], strict=True)),
            task_to_id={task: vocab[f"<|{task}|>"] for task in ("transcribe", "translate")},
            language="en",
            task="transcribe",
        )
    return GenerationConfig(**settings)
