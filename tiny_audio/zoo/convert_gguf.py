"""A GGUF language model -> a transformers safetensors folder. transformers parses the GGUF
(dequantizing its weights, reading the tokenizer and chat template from its metadata) once;
the saved folder then loads in under a second."""

from __future__ import annotations

from pathlib import Path


def convert_gguf(source: Path, destination: Path) -> None:
    """Write a transformers causal-LM folder (float32) for the single `*.gguf` file in `source`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    (gguf_file,) = source.glob("*.gguf")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file.name)
    if not tokenizer.chat_template:
        raise ValueError(f"{gguf_file.name} carries no chat template")
    model = AutoModelForCausalLM.from_pretrained(
        source,
        gguf_file=gguf_file.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    model.config.name_or_path = ""
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)
