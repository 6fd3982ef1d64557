"""Peer systems behind the same `Recognizer` face as tiny-audio models, so `ta eval` and
`ta bench` can put them side by side: faster-whisper, PocketSphinx and two paid REST APIs.

Each constructor takes the part of the name after ":" ("whisper:tiny.en" -> "tiny.en").
`transcribe(waveforms, **options)` understands `num_beams`, `batch_size` and `max_new_tokens`
where they mean something for that system and ignores the rest, since one eval run passes the
same options to every model.
"""

from __future__ import annotations

import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.errors import UserError
from tiny_audio.recognizer import RecognizerBase

if TYPE_CHECKING:
    from tiny_audio.model.alignment import Word

# faster-whisper variant -> zoo name of the CTranslate2 model folder.
WHISPER_VARIANTS: dict[str, str] = {"tiny.en": "whisper-tiny.en", "base": "whisper-base"}
WHISPER_WINDOW_SECONDS = 30.0


class FasterWhisperRecognizer(RecognizerBase):
    """faster-whisper on the zoo's CTranslate2 Whisper files: int8, 2 CPU threads unless
    OMP_NUM_THREADS says otherwise (so `ta bench --threads` sets both systems alike).

    Clips up to 30 s are decoded in one CTranslate2 `generate` call per batch, the way
    faster-whisper's batched pipeline does it: log-mel padded to 30 s, an English
    no-timestamps prompt, greedy or beam search, no temperature fallback (the same decoding a
    tiny-audio model gets). Longer clips go through `WhisperModel.transcribe`, which slides
    30 s windows, with the same settings.
    """

    def __init__(
        self,
        variant: str = "tiny.en",
        compute_type: str = "int8",
        threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        variant = variant or "tiny.en"
        if variant not in WHISPER_VARIANTS:
            known = ", ".join(f"whisper:{name}" for name in WHISPER_VARIANTS)
            raise UserError(f"whisper:{variant}: unknown faster-whisper model (known: {known})")
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        from tiny_audio.zoo import ct2_path

        self.name = f"whisper:{variant}"
        directory = ct2_path(WHISPER_VARIANTS[variant])
        self.model = WhisperModel(
            str(directory),
            device=device,
            compute_type=compute_type,
            cpu_threads=threads or int(os.environ.get("OMP_NUM_THREADS", 2)),
        )
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer,
            self.model.model.is_multilingual,
            task="transcribe",
            language="en",
        )
        self.prompt = self.model.get_prompt(self.tokenizer, [], without_timestamps=True)

    def transcribe(
        self,
        audio: list[np.ndarray],
        num_beams: int = 1,
        batch_size: int = 1,
        max_new_tokens: int | None = None,
        **_: Any,
    ) -> list[str]:
        texts: dict[int, str] = {}
        window = int(WHISPER_WINDOW_SECONDS * SAMPLE_RATE)
        short = [i for i, waveform in enumerate(audio) if len(waveform) <= window]
        for start in range(0, len(short), max(batch_size, 1)):
            indices = short[start : start + max(batch_size, 1)]
            decoded = self._generate([audio[i] for i in indices], num_beams, max_new_tokens)
            texts.update(zip(indices, decoded, strict=True))
        for i in sorted(set(range(len(audio))) - set(short)):
            segments, _ = self.model.transcribe(
                audio[i],
                language="en",
                beam_size=num_beams,
                temperature=0.0,
                without_timestamps=True,
                condition_on_previous_text=False,
                max_new_tokens=max_new_tokens,
            )
            texts[i] = " ".join(segment.text.strip() for segment in segments)
        return [texts[i] for i in range(len(audio))]

    def _generate(
        self, waveforms: list[np.ndarray], num_beams: int, max_new_tokens: int | None
    ) -> list[str]:
        import ctranslate2
        from faster_whisper.audio import pad_or_trim

        frames = (
            int(WHISPER_WINDOW_SECONDS * SAMPLE_RATE) // self.model.feature_extractor.hop_length
        )
        # As WhisperModel.transcribe does: the log-mel of the clip less its last frame (the
        # extractor's own padding), then padded to 30 s.
        features = np.stack(
            [
                pad_or_trim(self.model.feature_extractor(waveform)[..., :-1], frames)
                for waveform in waveforms
            ]
        )
        max_length = len(self.prompt) + (max_new_tokens or self.model.max_length)
        results = self.model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32)),
            [self.prompt] * len(waveforms),
            beam_size=num_beams,
            max_length=min(max_length, self.model.max_length),
        )
        return [self.tokenizer.decode(result.sequences_ids[0]).strip() for result in results]

    def transcribe_words(
        self, audio: list[np.ndarray], batch_size: int = 1, num_beams: int = 1, **_: Any
    ) -> list[list[Word]]:
        """Each clip's words, timed by faster-whisper's own `word_timestamps=True` (30 s
        windows, the same decoding settings as `transcribe` gives long clips)."""
        from tiny_audio.model.alignment import Word

        clips = []
        for waveform in audio:
            segments, _ = self.model.transcribe(
                waveform,
                language="en",
                beam_size=num_beams,
                temperature=0.0,
                condition_on_previous_text=False,
                word_timestamps=True,
            )
            clips.append(
                [
                    Word(word.word.strip(), word.start, word.end)
                    for segment in segments
                    for word in segment.words or []
                ]
            )
        return clips


class PocketSphinxRecognizer(RecognizerBase):
    """CMU PocketSphinx 5 with the US English acoustic model and LM its wheel ships."""

    def __init__(self, variant: str = "") -> None:
        if variant:
            raise UserError(f"pocketsphinx:{variant}: pocketsphinx takes no variant")
        from pocketsphinx import Decoder

        self.name = "pocketsphinx"
        self.decoder = Decoder(loglevel="FATAL")

    def transcribe(self, audio: list[np.ndarray], **_: Any) -> list[str]:
        return [self._decode(waveform) for waveform in audio]

    def _decode(self, waveform: np.ndarray) -> str:
        pcm = (np.clip(waveform, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


class _RestRecognizer(RecognizerBase):
    """Shared plumbing for paid speech APIs: the key from the environment, WAV upload, JSON
    over HTTPS, and one thread per clip of a batch so `--batch-size` sets concurrency."""

    name = ""
    needs_warmup = False  # a warm-up would be a paid request that measures nothing
    key_variable = ""
    base_url_variable = ""
    default_base_url = ""

    def __init__(self, variant: str = "", timeout_s: float = 120.0) -> None:
        key = os.environ.get(self.key_variable, "")
        if not key:
            raise UserError(f"{self.key_variable} is not set; export your API key to use this peer")
        self.key = key
        self.variant = variant
        self.timeout_s = timeout_s
        self.base_url = os.environ.get(self.base_url_variable, self.default_base_url).rstrip("/")

    def transcribe(self, audio: list[np.ndarray], **_: Any) -> list[str]:
        if len(audio) == 1:
            return [self._transcribe_one(audio[0])]
        with ThreadPoolExecutor(max_workers=len(audio)) as pool:
            return list(pool.map(self._transcribe_one, audio))

    def _transcribe_one(self, waveform: np.ndarray) -> str:
        raise NotImplementedError

    def _request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base_url + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:200]
            raise RuntimeError(f"{self.name}: HTTP {error.code} {detail}") from None


def _wav_bytes(waveform: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class AssemblyAIRecognizer(_RestRecognizer):
    """AssemblyAI's v2 REST API: upload, create a transcript, poll until it completes.
    The variant, if any, is the `speech_model` ("assemblyai:universal")."""

    key_variable = "ASSEMBLYAI_API_KEY"
    base_url_variable = "ASSEMBLYAI_BASE_URL"
    default_base_url = "https://api.assemblyai.com"
    poll_interval_s = 1.0

    def __init__(self, variant: str = "", timeout_s: float = 300.0) -> None:
        self.name = f"assemblyai:{variant}" if variant else "assemblyai"
        super().__init__(variant, timeout_s)

    def _transcribe_one(self, waveform: np.ndarray) -> str:
        auth = {"authorization": self.key}
        upload = self._request(
            "POST",
            "/v2/upload",
            {**auth, "content-type": "application/octet-stream"},
            _wav_bytes(waveform),
        )
        job: dict[str, Any] = {"audio_url": upload["upload_url"], "language_code": "en"}
        if self.variant:
            job["speech_model"] = self.variant
        created = self._request(
            "POST",
            "/v2/transcript",
            {**auth, "content-type": "application/json"},
            json.dumps(job).encode(),
        )
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            status = self._request("GET", f"/v2/transcript/{created['id']}", auth)
            if status["status"] == "completed":
                return status.get("text") or ""
            if status["status"] == "error":
                raise RuntimeError(f"{self.name}: {status.get('error', 'transcription failed')}")
            time.sleep(self.poll_interval_s)
        raise RuntimeError(f"{self.name}: no result within {self.timeout_s:.0f} s")


class DeepgramRecognizer(_RestRecognizer):
    """Deepgram's pre-recorded `/v1/listen` API; the variant is the model (default nova-3)."""

    key_variable = "DEEPGRAM_API_KEY"
    base_url_variable = "DEEPGRAM_BASE_URL"
    default_base_url = "https://api.deepgram.com"

    def __init__(self, variant: str = "", timeout_s: float = 120.0) -> None:
        self.name = f"deepgram:{variant or 'nova-3'}"
        super().__init__(variant or "nova-3", timeout_s)

    def _transcribe_one(self, waveform: np.ndarray) -> str:
        query = urllib.parse.urlencode(
            {"model": self.variant, "language": "en", "smart_format": "true"}
        )
        headers = {"Authorization": f"Token {self.key}", "Content-Type": "audio/wav"}
        result = self._request("POST", f"/v1/listen?{query}", headers, _wav_bytes(waveform))
        try:
            return result["results"]["channels"][0]["alternatives"][0]["transcript"]
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"{self.name}: unexpected response {str(result)[:200]}") from None
