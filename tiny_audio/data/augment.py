"""Training augmentation. Waveform functions take and return mono float32 numpy arrays at
`rate` (16 kHz); all but `change_speed` and `pad_with_room_tone` keep the length. Feature and embedding functions work on
torch tensors. `Augmenter` draws each augmentation with its probability from `AugmentConfig`.
"""

from __future__ import annotations

import io
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import soxr

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.data.manifest import Utterance
from tiny_audio.errors import UserError

if TYPE_CHECKING:
    import torch


@dataclass
class AugmentConfig:
    """Probabilities (the names of the `augment` block in tiny_audio/configs/data/) and ranges.
    Each probability is the chance that one training example gets that augmentation, except
    `silence`: the share of extra silent or noise-only clips, with empty transcripts, added to
    the training set (`add_silence`) so that the model learns to say nothing on silence."""

    speed: float = 0.0
    pitch: float = 0.0
    reverb: float = 0.0
    noise: float = 0.0
    channel: float = 0.0  # one of CHANNELS, drawn uniformly
    pad: float = 0.0  # room tone before and after the speech
    specaugment: float = 0.0
    silence: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)
    pitch_cents: float = 200.0  # uniform in +-this
    rt60_range: tuple[float, float] = (0.15, 0.8)  # seconds
    snr_db_range: tuple[float, float] = (5.0, 30.0)
    silence_seconds: tuple[float, float] = (0.5, 5.0)
    pad_seconds: tuple[float, float] = (0.1, 1.0)  # on each side
    max_seconds: float = 30.0  # the encoder's window: padding never takes a clip past it
    freq_masks: int = 2
    freq_mask_width: int = 15  # mel bins
    time_masks: int = 2
    time_mask_ratio: float = 0.05  # of the clip's frames, per mask


def change_speed(waveform: np.ndarray, factor: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Play `factor` times faster (tempo and pitch together, like sox `speed` and Kaldi's
    speed perturbation); the result is len / factor samples at the same rate."""
    return soxr.resample(waveform, rate * factor, rate, quality="HQ").astype(np.float32)


def shift_pitch(waveform: np.ndarray, cents: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Shift pitch by `cents` keeping tempo and length (sox `pitch`, a WSOLA time stretch)."""
    raw = ["-t", "raw", "-r", str(rate), "-e", "floating-point", "-b", "32", "-c", "1"]
    try:
        result = subprocess.run(
            ["sox", *raw, "-", *raw, "-", "pitch", f"{cents:.1f}"],
            input=waveform.astype(np.float32).tobytes(),
            capture_output=True,
            check=True,
        )
    except FileNotFoundError:
        raise UserError("pitch augmentation needs sox (apt-get install sox)") from None
    return _fit(np.frombuffer(result.stdout, dtype=np.float32), len(waveform))


def colored_noise(rng: np.random.Generator, length: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1/f**exponent: 0 white, 1 pink, 2 brown; unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = frequencies[1] if length > 2 else 1.0
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=length)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_noise(waveform: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix `noise` (looped or cut to length) into `waveform` at the given signal-to-noise ratio."""
    noise = np.resize(noise, len(waveform))
    signal_power = np.mean(waveform**2) + 1e-10
    noise_power = np.mean(noise**2) + 1e-10
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return _limit(waveform + scale * noise)


def room_impulse_response(
    rng: np.random.Generator, rt60: float, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """A simulated shoebox room (pyroomacoustics image source method) with reverberation time
    `rt60` seconds, a random size, and random talker and microphone positions."""
    import pyroomacoustics as pra  # in the train extra: `ta` names it when missing

    size = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    try:
        absorption, max_order = pra.inverse_sabine(rt60, size)
    except ValueError:  # rt60 too short for the room: use the most absorbing walls
        absorption, max_order = 0.99, 3
    room = pra.ShoeBox(
        size, fs=rate, materials=pra.Material(absorption), max_order=min(max_order, 12)
    )
    margin = 0.5
    room.add_source(rng.uniform(margin, size - margin))
    room.add_microphone(rng.uniform(margin, size - margin))
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float32)


def reverberate(waveform: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """Convolve with a room response, aligned on its direct path, at the original peak level."""
    from scipy.signal import fftconvolve

    start = int(np.argmax(np.abs(impulse_response)))
    wet = fftconvolve(waveform, impulse_response[start:])[: len(waveform)]
    peak = np.max(np.abs(wet)) + 1e-10
    return (wet * (np.max(np.abs(waveform)) / peak)).astype(np.float32)


def _phone_band(waveform: np.ndarray, rate: int) -> np.ndarray:
    """The 300-3400 Hz band of a narrowband call, at 8 kHz."""
    from scipy.signal import butter, sosfilt

    band = butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos")
    return soxr.resample(sosfilt(band, waveform), rate, 8000).astype(np.float32)


def _codec_round_trip(
    waveform: np.ndarray, rate: int, format: str, subtype: str, **options: Any
) -> np.ndarray:
    """Encode with libsndfile's codec in memory and decode again, at `rate`."""
    encoded = io.BytesIO()
    sf.write(encoded, np.clip(waveform, -1.0, 1.0), rate, format=format, subtype=subtype, **options)
    encoded.seek(0)
    decoded, _ = sf.read(encoded, dtype="float32")
    return decoded


def telephone(waveform: np.ndarray, rate: int = SAMPLE_RATE, subtype: str = "ULAW") -> np.ndarray:
    """A narrowband phone call: 300-3400 Hz band at 8 kHz through a telephone codec (G.711
    mu-law "ULAW" or A-law "ALAW", or GSM 06.10 "GSM610"), back at `rate`."""
    decoded = _codec_round_trip(_phone_band(waveform, rate), 8000, "WAV", subtype)
    return _fit(soxr.resample(decoded, 8000, rate).astype(np.float32), len(waveform))


def lossy(
    waveform: np.ndarray, compression: float, format: str, subtype: str, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """MP3 or Opus at libsndfile's `compression` level (0 best, 1 smallest)."""
    decoded = _codec_round_trip(waveform, rate, format, subtype, compression_level=compression)
    return _fit(decoded.astype(np.float32), len(waveform))


def band_limit(waveform: np.ndarray, rate: int = SAMPLE_RATE, to_rate: int = 11025) -> np.ndarray:
    """Sampled at `to_rate` on the way (an 11 kHz recording): nothing above its Nyquist."""
    narrow = soxr.resample(waveform, rate, to_rate)
    return _fit(soxr.resample(narrow, to_rate, rate).astype(np.float32), len(waveform))


# The channels `channel` augmentation draws from: name -> (waveform, rng) -> waveform.
CHANNELS: dict[str, Callable[[np.ndarray, random.Random], np.ndarray]] = {
    "g711-mulaw": lambda wave, _: telephone(wave, subtype="ULAW"),
    "g711-alaw": lambda wave, _: telephone(wave, subtype="ALAW"),
    "gsm": lambda wave, _: telephone(wave, subtype="GSM610"),
    # 17-26 kbit/s at 16 kHz (libsndfile refuses MP3 at level 1)
    "mp3": lambda wave, rng: lossy(wave, rng.uniform(0.7, 0.99), "MP3", "MPEG_LAYER_III"),
    "opus": lambda wave, rng: lossy(wave, rng.uniform(0.9, 1.0), "OGG", "OPUS"),  # 8-32 kbit/s
    "11khz": lambda wave, _: band_limit(wave),
}


def pad_with_room_tone(
    waveform: np.ndarray, before: float, after: float, rng: np.random.Generator,
    rate: int = SAMPLE_RATE,
) -> np.ndarray:  # fmt: skip
    """`before` and `after` seconds of quiet noise around the clip, as an untrimmed recording
    has: the model learns that what is not speech gets no words."""
    level = float(np.sqrt(np.mean(waveform**2))) * 10 ** (rng.uniform(-50, -20) / 20)
    tone = colored_noise(rng, int((before + after) * rate), float(rng.choice([0.0, 1.0, 2.0])))
    head = int(before * rate)
    return np.concatenate([tone[:head] * level, waveform, tone[head:] * level]).astype(np.float32)


def silence_clip(rng: np.random.Generator, seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Near-silence or noise without speech, for examples whose transcript is empty."""
    length = int(seconds * rate)
    level = 10 ** (rng.uniform(-80, -30) / 20)  # dBFS RMS
    return (colored_noise(rng, length, float(rng.choice([0.0, 1.0, 2.0]))) * level).astype(
        np.float32
    )


def spec_augment(
    features: torch.Tensor,
    generator: torch.Generator | None = None,
    freq_masks: int = 2,
    freq_mask_width: int = 15,
    time_masks: int = 2,
    time_mask_ratio: float = 0.05,
) -> torch.Tensor:
    """SpecAugment masks on (..., mel, time) features, filled with the mean; returns a copy."""
    import torch

    out = features.clone()
    mel_bins, frames = out.shape[-2:]
    fill = out.mean()
    for dim, length, masks, width in (
        (-2, mel_bins, freq_masks, freq_mask_width),
        (-1, frames, time_masks, max(1, int(time_mask_ratio * frames))),
    ):
        for _ in range(masks):
            size = min(int(torch.randint(0, width + 1, (1,), generator=generator)), length)
            start = int(torch.randint(0, length - size + 1, (1,), generator=generator))
            out.narrow(dim, start, size).fill_(fill)
    return out


class Augmenter:
    """Applies the waveform augmentations of a config, each with its probability."""

    def __init__(
        self, config: AugmentConfig, seed: int = 0, noises: list[np.ndarray] | None = None
    ):
        self.config = config
        self.random = random.Random(seed)
        self.numpy = np.random.default_rng(seed)
        self.noises = noises or []  # real noise recordings at 16 kHz; colored noise otherwise

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        c, draw = self.config, self.random.random
        if draw() < c.speed:
            waveform = change_speed(waveform, self.random.uniform(*c.speed_range))
        if draw() < c.pitch:
            waveform = shift_pitch(waveform, self.random.uniform(-c.pitch_cents, c.pitch_cents))
        if draw() < c.reverb:
            rt60 = self.random.uniform(*c.rt60_range)
            waveform = reverberate(waveform, room_impulse_response(self.numpy, rt60))
        if draw() < c.noise:
            waveform = add_noise(
                waveform, self._noise(len(waveform)), self.random.uniform(*c.snr_db_range)
            )
        if draw() < c.channel:
            waveform = CHANNELS[self.random.choice(list(CHANNELS))](waveform, self.random)
        room = c.max_seconds - len(waveform) / SAMPLE_RATE
        if draw() < c.pad and room > 0:
            before, after = (min(self.random.uniform(*c.pad_seconds), room / 2) for _ in "ab")
            waveform = pad_with_room_tone(waveform, before, after, self.numpy)
        return waveform

    def _noise(self, length: int) -> np.ndarray:
        if self.noises:
            return self.noises[self.random.randrange(len(self.noises))]
        return colored_noise(self.numpy, length, self.random.choice([0.0, 1.0, 2.0]))


def waveform_augmenter(
    probabilities: dict[str, float], seed: int = 0
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The training collator's waveform hook for an `augment` config block, or None if idle."""
    config = augment_config(probabilities)
    active = (config.speed, config.pitch, config.reverb, config.noise, config.channel, config.pad)
    return Augmenter(config, seed) if any(p > 0 for p in active) else None


FeatureAugmenter = Callable[["torch.Tensor", "torch.Tensor | None"], "torch.Tensor"]
"""(features (B, mel, time), lengths (B,) or None) -> augmented features."""


def feature_augmenter(probabilities: dict[str, float], seed: int = 0) -> FeatureAugmenter | None:
    """The collator's feature hook: SpecAugment on each (mel, time) example of a batch with
    probability `specaugment`, or None if that is 0. Masks fall within each example's own
    frames (`lengths`; all of them if None), not in the batch's padding."""
    config = augment_config(probabilities)
    if config.specaugment <= 0:
        return None
    import torch

    generator = torch.Generator().manual_seed(seed)

    def apply(features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        chosen = torch.rand(features.shape[0], generator=generator) < config.specaugment
        out = features.clone()
        for index in chosen.nonzero().flatten().tolist():
            frames = features.shape[-1] if lengths is None else int(lengths[index])
            out[index, ..., :frames] = spec_augment(
                features[index, ..., :frames],
                generator,
                config.freq_masks,
                config.freq_mask_width,
                config.time_masks,
                config.time_mask_ratio,
            )
        return out

    return apply


def augment_config(probabilities: dict[str, float]) -> AugmentConfig:
    known = ("speed", "pitch", "reverb", "noise", "channel", "pad", "specaugment", "silence")
    unknown = sorted(set(probabilities) - set(known))
    if unknown:
        raise UserError(f"unknown augmentation {', '.join(unknown)} (known: {', '.join(known)})")
    values: dict[str, Any] = {name: float(p) for name, p in probabilities.items()}
    return AugmentConfig(**values)


def add_silence(
    utterances: list[Utterance],
    share: float,
    seed: int = 0,
    seconds: tuple[float, float] = (0.5, 5.0),
) -> list[Utterance]:
    """The utterances plus round(share * count) silent or noise-only clips with "" as text;
    their audio is an in-memory (waveform, rate) pair."""
    rng = np.random.default_rng(seed)
    extra = [
        Utterance(
            f"silence-{index:05d}",
            (clip, SAMPLE_RATE),
            "",
            len(clip) / SAMPLE_RATE,
            None,
            "silence",
        )
        for index in range(round(share * len(utterances)))
        for clip in [silence_clip(rng, float(rng.uniform(*seconds)))]
    ]
    return [*utterances, *extra]


def _fit(waveform: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad to exactly `length` samples."""
    if len(waveform) >= length:
        return np.ascontiguousarray(waveform[:length], dtype=np.float32)
    return np.pad(waveform, (0, length - len(waveform))).astype(np.float32)


def _limit(waveform: np.ndarray) -> np.ndarray:
    """Scale down only if the mix would clip."""
    peak = float(np.max(np.abs(waveform))) if waveform.size else 0.0
    return (waveform / peak if peak > 1.0 else waveform).astype(np.float32)
