"""ASRProcessor: waveforms -> encoder features; transcripts and prompts -> the decoder's chat
turn with one <audio> token per audio embedding, padded into a batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import ProcessorMixin

from .features import MIN_SAMPLES, SAMPLE_RATE

IGNORE_INDEX = -100  # the label of a position the loss skips: prompt, audio and padding


class ASRProcessor(ProcessorMixin):
    def __init__(self, feature_extractor: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(feature_extractor, tokenizer, **kwargs)
        # The chat turn the audio goes in (set_chat, from the model's config).
        self.system_prompt: str | None = None
        self.user_prompt = ""
        self.audio_token = ""
        self.audio_token_id = -1
        self._prompts: dict[str | None, tuple[list[int], list[int]]] = {}

    def set_chat(self, system_prompt: str | None, user_prompt: str, audio_token: str) -> int:
        """The model's chat turn: its system prompt (None keeps the template's own), the user's
        words before the audio, and the <audio> placeholder, added to the tokenizer; its id."""
        if audio_token not in self.tokenizer.get_vocab():
            self.tokenizer.add_special_tokens({"additional_special_tokens": [audio_token]})
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.system_prompt, self.user_prompt, self.audio_token = (
            system_prompt,
            user_prompt,
            audio_token,
        )
        self.audio_token_id = int(self.tokenizer.convert_tokens_to_ids(audio_token))
        self._prompts.clear()
        return self.audio_token_id

    # ---- the chat turn -------------------------------------------------------------------------

    def prompt_ids(self, prompt: str | None) -> tuple[list[int], list[int]]:
        """Token ids before and after the audio in the chat-formatted user turn."""
        if prompt not in self._prompts:
            context = f"{prompt}\n" if prompt else ""
            messages = [{"role": "user", "content": context + self.user_prompt + self.audio_token}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            before, after = text.split(self.audio_token)
            self._prompts[prompt] = (
                self.tokenizer(before, add_special_tokens=False).input_ids,
                self.tokenizer(after, add_special_tokens=False).input_ids,
            )
        return self._prompts[prompt]

    def text_inputs(
        self,
        audio_token_counts: list[int],
        texts: list[str] | None = None,
        prompts: list[str | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Prompt ids with one <audio> per audio embedding; with `texts`, the answer and its labels.

        Training batches (with texts) are right-padded. Generation batches are padded between the
        prompt's text before the audio and the audio, so that every prompt ends where generation
        starts and that text sits at the same positions in every row (its KV cache is shared)."""
        rows, label_rows, pad_at = [], [], []
        for i, count in enumerate(audio_token_counts):
            before, after = self.prompt_ids(prompts[i] if prompts else None)
            ids = before + [self.audio_token_id] * count + after
            pad_at.append(len(before))
            labels = [IGNORE_INDEX] * len(ids)
            if texts is not None:
                answer = self.tokenizer(texts[i], add_special_tokens=False).input_ids
                answer = answer + [self.tokenizer.eos_token_id]
                ids, labels = ids + answer, labels + answer
                pad_at[-1] = len(ids)
            rows.append(ids)
            label_rows.append(labels)
        longest = max(len(ids) for ids in rows)
        pad_id = self.tokenizer.pad_token_id
        batch: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
        for ids, labels, at in zip(rows, label_rows, pad_at):
            padding = longest - len(ids)
            for key, values, fill in (
                ("input_ids", ids, pad_id),
                ("attention_mask", [1] * len(ids), 0),
                ("labels", labels, IGNORE_INDEX),
            ):
                batch[key].append(values[:at] + [fill] * padding + values[at:])
        return {key: torch.tensor(values) for key, values in batch.items()}

    def features(self, waveforms: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each clip on its own (so a batch equals its clips one by one), then zero-padded.

        Returns features (B, ..., T) and lengths (B,) along the last axis."""
        per_clip = []
        for waveform in waveforms:
            waveform = np.asarray(waveform, dtype=np.float32)
            if len(waveform) < MIN_SAMPLES:
                waveform = np.pad(waveform, (0, MIN_SAMPLES - len(waveform)))
            extracted = self.feature_extractor(
                waveform, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np"
            )
            values = extracted.get("input_features", extracted.get("input_values"))
            per_clip.append(torch.from_numpy(np.asarray(values[0], dtype=np.float32)))
        lengths = torch.tensor([clip.shape[-1] for clip in per_clip])
        longest = int(lengths.max())
        batch = torch.stack(
            [torch.nn.functional.pad(clip, (0, longest - clip.shape[-1])) for clip in per_clip]
        )
        return batch, lengths

    def __call__(
        self, audio: list[np.ndarray] | np.ndarray, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        waveforms = [audio] if isinstance(audio, np.ndarray) and audio.ndim == 1 else list(audio)
        features, lengths = self.features(waveforms)
        return {"input_features": features, "feature_lengths": lengths}

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)


ASRProcessor.register_for_auto_class("AutoProcessor")
