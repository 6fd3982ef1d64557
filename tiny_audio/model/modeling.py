"""ASRModel: frozen audio encoder -> trained projector -> frozen causal LM (optionally with LoRA).

Read top to bottom: loading the parts, the prompt, audio embeddings spliced into the prompt at
<audio> positions, the training forward pass, generation, long-audio windowing, save and load.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.utils import CONFIG_NAME

from .configuration import ASRConfig
from .encoders import load_encoder, load_feature_extractor
from .fast import PrefixCache
from .lean import LoopGuard, stop_tokens
from .processing import IGNORE_INDEX, SAMPLE_RATE, ASRProcessor
from .projectors import build_projector
from .windows import WindowedRecognizer

try:  # Inside tiny-audio: parts resolve through its offline zoo; a damaged checkpoint is one line.
    from tiny_audio.errors import UserError
    from tiny_audio.recognizer import reading
    from tiny_audio.zoo import resolve as zoo_resolve
except ImportError:  # Loaded as Hub remote code without tiny-audio installed: plain errors.
    from contextlib import nullcontext as reading  # type: ignore[assignment]

    UserError = ValueError  # type: ignore[assignment,misc]
    zoo_resolve = None  # type: ignore[assignment]

logger = logging.getLogger("tiny_audio")

WEIGHTS_NAME = "model.safetensors"
# Without tiny-audio's zoo, its names fall back to the original checkpoints on the Hub.
ZOO_HUB_IDS = {
    "whisper-tiny.en": "openai/whisper-tiny.en",
    "whisper-base": "openai/whisper-base",
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
# The files that make a saved directory loadable with trust_remote_code=True.
REMOTE_CODE_FILES = [
    "configuration.py",
    "encoders.py",
    "fast.py",
    "features.py",
    "layers.py",
    "numeric.py",
    "lean.py",
    "projectors.py",
    "processing.py",
    "modeling.py",
    "pipeline.py",
    "windows.py",
    "alignment.py",
]


def resolve_part(name: str) -> str:
    if zoo_resolve is not None:
        return str(zoo_resolve(name))
    return ZOO_HUB_IDS.get(name, name)


class RepetitionGuard(LoopGuard, StoppingCriteria):
    """Stop a sequence whose tail is one short pattern repeated over and over (a decoding loop)."""

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        return torch.tensor(
            [self.looping_period(row.tolist()) is not None for row in input_ids],
            device=input_ids.device,
        )


class CTCHead(nn.Module):
    """Acoustic grounding while training: each projected audio frame is scored against the LLM's
    own frozen token embeddings (plus a learned blank) and the transcript's tokens must align
    with those scores under CTC, so the projector has to say what was heard without leaning on
    the LLM's prior. Inference never uses it."""

    def __init__(self, dim: int, embedding_scale: float) -> None:
        super().__init__()
        self.blank = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(()))
        # Frames and embeddings share the RMS `embedding_scale`: this makes logits sqrt(dim) x cosine.
        self.norm = 1.0 / (embedding_scale**2 * math.sqrt(dim))

    def forward(
        self,
        audio_embeds: torch.Tensor,
        audio_mask: torch.Tensor,
        token_embeddings: torch.Tensor,
        targets: list[torch.Tensor],
    ) -> torch.Tensor:
        frames = audio_embeds[audio_mask].float()  # real frames only, packed
        scores = torch.cat(
            [frames @ token_embeddings.float().T, (frames @ self.blank)[:, None]], -1
        )
        log_probs = (scores * self.log_scale.exp() * self.norm).log_softmax(dim=-1)
        lengths = audio_mask.sum(dim=1)
        padded = nn.utils.rnn.pad_sequence(log_probs.split(lengths.tolist()))  # (T, N, C)
        return nn.functional.ctc_loss(
            padded,
            torch.cat(targets),
            lengths,
            torch.tensor([len(t) for t in targets]),
            blank=token_embeddings.shape[0],
            zero_infinity=True,  # a transcript with more tokens than frames teaches nothing
        )


class ASRModel(PreTrainedModel, WindowedRecognizer):
    config_class = ASRConfig
    config: ASRConfig
    base_model_prefix = "tiny_audio"
    name = "tiny-audio"  # the Recognizer name; from_pretrained sets the path it loaded
    decoder: Any  # a causal LM, or its peft wrapper once LoRA is added
    main_input_name = "input_features"

    def __init__(self, config: ASRConfig, processor: ASRProcessor | None = None) -> None:
        super().__init__(config)
        encoder_path, decoder_path = (
            resolve_part(config.audio_encoder),
            resolve_part(config.text_decoder),
        )
        self.encoder = load_encoder(encoder_path, config.encoder_pad_to_window)
        self.decoder = AutoModelForCausalLM.from_pretrained(decoder_path, dtype=torch.float32)
        self.decoder.requires_grad_(False)
        self.decoder.eval()
        if processor is None:
            tokenizer = AutoTokenizer.from_pretrained(decoder_path)
            processor = ASRProcessor(load_feature_extractor(encoder_path), tokenizer)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.audio_token_id = processor.set_chat(
            config.system_prompt, config.user_prompt, config.audio_token
        )

        config.encoder_dim = self.encoder.hidden_size
        config.decoder_dim = self.decoder.config.hidden_size
        if config.embedding_scale == 1.0:  # unset: match the LLM's token embedding RMS
            embeddings = self.decoder.get_input_embeddings().weight
            config.embedding_scale = float(embeddings.pow(2).mean(dim=-1).sqrt().mean())
        self.projector = build_projector(config)
        self.ctc_head = (
            CTCHead(config.decoder_dim, config.embedding_scale) if config.ctc_weight > 0 else None
        )
        if config.lora_rank > 0:
            self.decoder = self._with_lora(
                self.decoder, config.lora_rank, config.lora_target_modules
            )
        if config.encoder_lora_rank > 0:
            self.encoder.encoder = self._with_lora(
                self.encoder.encoder, config.encoder_lora_rank, config.encoder_lora_target_modules
            )
        self.prefix_cache: PrefixCache | None = None  # set by prepare_for_inference
        logger.info(
            "tiny-audio model: %s -> %s projector (%s trainable parameters) -> %s",
            config.audio_encoder,
            config.projector_type,
            f"{self.num_trainable_parameters():,}",
            config.text_decoder,
        )

    def _with_lora(self, model: nn.Module, rank: int, targets: list[str]) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=rank,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=self.config.lora_dropout,
            target_modules=targets,
            bias="none",
        )
        with warnings.catch_warnings():  # peft still asks transformers 5 a deprecated question
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
            return get_peft_model(model, lora)

    def _init_weights(self, module: nn.Module) -> None:
        """The encoder and decoder come pretrained and the projector initialises itself."""

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.trained_parameters().values())

    def trained_parameters(self) -> dict[str, nn.Parameter]:
        """What a checkpoint stores: the projector, any CTC head and any LoRA adapters."""
        return {
            name: param
            for name, param in self.named_parameters()
            if name.startswith(("projector.", "ctc_head.")) or "lora_" in name
        }

    # ---- audio embeddings spliced into the prompt ---------------------------------------------

    def encode(
        self, input_features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.set_grad_enabled(self.training and self.config.encoder_lora_rank > 0):
            return self.encoder(input_features.to(self.device), feature_lengths.to(self.device))

    def embed_audio(
        self,
        input_features: torch.Tensor | None = None,
        feature_lengths: torch.Tensor | None = None,
        encoder_hidden: torch.Tensor | None = None,
        encoder_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected audio embeddings and their mask, from features or from cached encoder output."""
        if encoder_hidden is None:
            assert input_features is not None and feature_lengths is not None
            encoder_hidden, encoder_mask = self.encode(input_features, feature_lengths)
        assert encoder_mask is not None
        embeds, mask = self.projector(encoder_hidden.to(self.device), encoder_mask.to(self.device))
        if self.training and self.config.audio_token_dropout > 0:
            # Whole audio tokens vanish, so the decoder learns to lean on context.
            keep = (
                torch.rand(embeds.shape[:2], device=embeds.device)
                >= self.config.audio_token_dropout
            )
            embeds = embeds * keep[..., None].to(embeds.dtype)
        return embeds, mask

    def audio_token_counts(self, feature_lengths: torch.Tensor) -> list[int]:
        return self.projector.output_lengths(self.encoder.output_lengths(feature_lengths)).tolist()

    def splice(
        self, input_ids: torch.Tensor, audio_embeds: torch.Tensor, audio_mask: torch.Tensor
    ) -> torch.Tensor:
        is_audio = input_ids == self.audio_token_id
        if int(is_audio.sum()) != int(audio_mask.sum()):
            raise ValueError(
                f"prompt has {int(is_audio.sum())} <audio> positions for {int(audio_mask.sum())} audio embeddings"
            )
        text_ids = input_ids.masked_fill(is_audio, 0)
        embeds = self.decoder.get_input_embeddings()(text_ids)
        return embeds.masked_scatter(is_audio[..., None], audio_embeds[audio_mask].to(embeds.dtype))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        feature_lengths: torch.Tensor | None = None,
        encoder_hidden: torch.Tensor | None = None,
        encoder_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        audio_embeds, audio_mask = self.embed_audio(
            input_features, feature_lengths, encoder_hidden, encoder_mask
        )
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        inputs_embeds = self.splice(input_ids, audio_embeds, audio_mask)
        if labels is None:
            logits = self.decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits
            return {"logits": logits}
        # Logits only where some sequence has a label to predict: most positions are prompt.
        targets = labels.to(self.device)[:, 1:]
        positions = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
        logits = self.decoder(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, logits_to_keep=positions
        ).logits
        loss = nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            targets[:, positions].reshape(-1),
            ignore_index=IGNORE_INDEX,
        )
        output = {"loss": loss, "logits": logits}
        if self.projector.aux_loss is not None:
            output["aux_loss"] = self.projector.aux_loss
            output["loss"] = output["loss"] + self.projector.aux_loss
        if self.ctc_head is not None:
            eos = self.tokenizer.eos_token_id
            answers = [row[(row != IGNORE_INDEX) & (row != eos)] for row in labels.to(self.device)]
            token_embeddings = self.decoder.get_input_embeddings().weight
            output["ctc_loss"] = self.ctc_head(audio_embeds, audio_mask, token_embeddings, answers)
            output["loss"] = output["loss"] + self.config.ctc_weight * output["ctc_loss"]
        return output

    # ---- generation -----------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        input_features: torch.Tensor,
        feature_lengths: torch.Tensor,
        prompts: list[str | None] | None = None,
        max_new_tokens: int | None = None,
        num_beams: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        repetition_guard: bool = True,
        **generate_kwargs: Any,
    ) -> list[list[int]]:
        """New token ids for each clip (without the prompt, EOS or padding)."""
        audio_embeds, audio_mask = self.embed_audio(input_features, feature_lengths)
        text = self.processor.text_inputs(audio_mask.sum(dim=1).tolist(), prompts=prompts)
        input_ids, attention_mask = (
            text["input_ids"].to(self.device),
            text["attention_mask"].to(self.device),
        )
        if max_new_tokens is None:  # room for fast speech: ~6 tokens per second of audio
            seconds = float(feature_lengths.max()) / self.feature_rate
            max_new_tokens = min(448, math.ceil(6 * seconds) + 16)
        guard = RepetitionGuard()
        sampling: dict[str, Any] = {"temperature": temperature, "top_p": top_p} if do_sample else {}
        distinct_prompts = set(prompts or [None])
        if self.prefix_cache is not None and len(distinct_prompts) == 1 and num_beams == 1:
            before = self.processor.prompt_ids(distinct_prompts.pop())[0]  # beams would expand rows
            generate_kwargs["cache"] = self.prefix_cache.for_batch(before, len(input_ids))
        output = self.decoder.generate(
            inputs_embeds=self.splice(input_ids, audio_embeds, audio_mask),
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=do_sample,
            **sampling,
            eos_token_id=self.stop_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            stopping_criteria=StoppingCriteriaList([guard]) if repetition_guard else None,
            **generate_kwargs,
        )
        results = []
        for row in output.tolist():
            tokens = []
            for token in row:
                if token in self.stop_token_ids:
                    break
                tokens.append(token)
            results.append(guard.trim(tokens) if repetition_guard else tokens)
        return results

    @functools.cached_property
    def stop_token_ids(self) -> list[int]:
        """The decoder's end-of-turn tokens, and every token holding a line break: a transcript
        is one line, and what an instruct LLM writes after one (translations, chat) is not speech."""
        ids = self.decoder.generation_config.eos_token_id
        ids = ids if isinstance(ids, list) else [ids]
        vocabulary = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
        return stop_tokens([*ids, self.tokenizer.eos_token_id], vocabulary)

    @property
    def feature_rate(self) -> float:
        """Feature frames per second of audio (mel frames, or samples for waveform encoders)."""
        hop = getattr(self.processor.feature_extractor, "hop_length", None)
        return SAMPLE_RATE / hop if hop else float(SAMPLE_RATE)

    # ---- transcription of whole recordings ------------------------------------------------

    def transcribe_clips(
        self, clips: list[np.ndarray], prompt: str | None, **generate_options: Any
    ) -> list[str]:
        features, lengths = self.processor.features(clips)
        token_rows = self.generate(
            features, lengths, prompts=[prompt] * len(clips), **generate_options
        )
        return [
            self.tokenizer.decode(tokens, skip_special_tokens=True).strip() for tokens in token_rows
        ]

    # ---- fast inference ---------------------------------------------------------------------

    def prepare_for_inference(self) -> ASRModel:
        """The fast form (fast.py): LoRA merged into the decoder's weights and the prompt's text
        before the audio computed once per prompt. One way: such a model can no longer train or
        be saved."""
        if self.config.lora_rank > 0:
            self.decoder = self.decoder.merge_and_unload()
        self.prefix_cache = PrefixCache(self.decoder)
        return self.eval()

    # ---- save and load ----------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:  # type: ignore[override]
        """Only what was trained, plus processor files, config and the remote code to load it."""
        if self.prefix_cache is not None:
            raise UserError("a model prepared for inference (LoRA merged) cannot be saved")
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        self.config.auto_map = {
            "AutoConfig": "configuration.ASRConfig",
            "AutoModel": "modeling.ASRModel",
            "AutoProcessor": "processing.ASRProcessor",
        }
        self.config.custom_pipelines = {
            "automatic-speech-recognition": {"impl": "pipeline.ASRPipeline", "pt": ["AutoModel"]}
        }
        self.config.save_pretrained(directory)
        weights = {
            name: param.detach().cpu().contiguous()
            for name, param in self.trained_parameters().items()
        }
        save_file(weights, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        self.processor.save_pretrained(directory)
        self.processor.feature_extractor.save_pretrained(directory)
        copy_remote_code(directory)

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *args: Any,
        config: ASRConfig | None = None,
        fast: bool = False,
        **kwargs: Any,
    ) -> ASRModel:
        """With `fast`, the inference-only form of `prepare_for_inference`; without, the exact
        form that training uses."""
        directory = Path(resolve_part(str(pretrained_model_name_or_path)))
        if not directory.is_dir():  # a Hub id, when loaded without tiny-audio's zoo
            from huggingface_hub import snapshot_download

            directory = Path(snapshot_download(str(pretrained_model_name_or_path)))
        config_file, weights_file = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not isinstance(config, ASRConfig):
            with reading(config_file):
                config = ASRConfig.from_dict(json.loads(config_file.read_bytes()))
        with reading(weights_file):  # before the slow part: the encoder and decoder
            weights = load_file(str(weights_file))
        # Given the config, the tokenizer need not read config.json (remote code) itself.
        tokenizer = AutoTokenizer.from_pretrained(directory, config=config)
        processor = ASRProcessor(load_feature_extractor(str(directory)), tokenizer)
        model = cls(config, processor=processor)
        expected = model.trained_parameters()
        unexpected, missing = set(weights) - set(expected), set(expected) - set(weights)
        mismatch = f"{weights_file} does not match {config_file}"
        if unexpected or missing:
            raise UserError(
                f"{mismatch} (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )
        try:
            model.load_state_dict(weights, strict=False)
        except RuntimeError as error:  # shaped otherwise than the config builds them
            raise UserError(f"{mismatch}: {str(error).splitlines()[-1].strip()}") from None
        model.name = str(pretrained_model_name_or_path)
        return model.prepare_for_inference() if fast else model.eval()


def copy_remote_code(directory: Path) -> None:
    here = Path(__file__).parent
    for name in REMOTE_CODE_FILES:
        shutil.copyfile(here / name, directory / name)
    shutil.copyfile(here.parent / "audio.py", directory / "audio.py")
