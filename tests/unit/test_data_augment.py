"""Augmentations: output rate, length and the property each one promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from tiny_audio.audio import load_audio
from tiny_audio.cli import cli
from tiny_audio.data.augment import (
    CHANNELS,
    AugmentConfig,
    Augmenter,
    add_noise,
    add_silence,
    band_limit,
    change_speed,
    colored_noise,
    feature_augmenter,
    lossy,
    pad_with_room_tone,
    reverberate,
    room_impulse_response,
    shift_pitch,
    silence_clip,
    spec_augment,
    telephone,
    waveform_augmenter,
)
from tiny_audio.data.manifest import Utterance, read_manifest, write_manifest
from tiny_audio.errors import UserError

RATE = 16000


def tone(frequency: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_frequency(waveform: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / RATE)[np.argmax(spectrum)])


def band_energy(waveform: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(waveform)) ** 2
    frequencies = np.fft.rfftfreq(len(waveform), 1 / RATE)
    return float(spectrum[(frequencies >= low) & (frequencies < high)].sum())


def test_change_speed_shortens_and_raises_pitch() -> None:
    out = change_speed(tone(440), 1.25)
    assert out.dtype == np.float32 and abs(len(out) - RATE / 1.25) <= 2
    assert abs(peak_frequency(out) - 550) < 5


def test_shift_pitch_keeps_length_and_moves_pitch() -> None:
    out = shift_pitch(tone(440), 1200)  # one octave
    assert out.dtype == np.float32 and len(out) == RATE
    assert abs(peak_frequency(out[2000:-2000]) - 880) < 15


def test_add_noise_hits_the_requested_snr() -> None:
    clean = tone(300)
    noise = colored_noise(np.random.default_rng(0), 4000, exponent=1.0)  # shorter: gets looped
    noisy = add_noise(clean, noise, snr_db=10.0)
    assert noisy.dtype == np.float32 and len(noisy) == len(clean)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert abs(snr - 10.0) < 0.1


def test_reverb_keeps_length_and_spreads_energy_in_time() -> None:
    rng = np.random.default_rng(0)
    response = room_impulse_response(rng, rt60=0.6)
    assert response.ndim == 1 and len(response) > RATE // 10
    click = np.zeros(RATE, dtype=np.float32)
    click[100] = 1.0
    wet = reverberate(click, response)
    assert wet.dtype == np.float32 and len(wet) == RATE
    assert np.abs(wet[100]) == pytest.approx(1.0, abs=1e-5)
    assert np.sum(wet[2000:] ** 2) > 0.01 * np.sum(wet**2)  # a tail that a dry click lacks


@pytest.mark.parametrize("codec", ["ULAW", "ALAW", "GSM610"])
def test_telephone_keeps_length_and_drops_out_of_band_energy(codec: str) -> None:
    mix = tone(1000) + tone(6000) + tone(100)
    phone = telephone(mix, subtype=codec)
    assert phone.dtype == np.float32 and len(phone) == len(mix)
    assert band_energy(phone, 5000, 7000) < 1e-3 * band_energy(phone, 900, 1100)
    assert band_energy(phone, 80, 120) < 0.05 * band_energy(phone, 900, 1100)


@pytest.mark.parametrize(
    ("format", "subtype", "level"), [("MP3", "MPEG_LAYER_III", 0.99), ("OGG", "OPUS", 1.0)]
)
def test_lossy_codecs_keep_the_signal_and_lose_detail(
    format: str, subtype: str, level: float
) -> None:
    speechlike = (
        tone(300) + 0.3 * tone(1200) + 0.05 * colored_noise(np.random.default_rng(0), RATE, 1.0)
    )
    coded = lossy(speechlike, level, format, subtype)
    assert coded.dtype == np.float32 and len(coded) == len(speechlike)
    assert np.corrcoef(coded, speechlike)[0, 1] > 0.9  # time-aligned: no codec delay left in
    assert not np.allclose(coded, speechlike, atol=1e-3)


def test_an_11_khz_recording_has_nothing_above_5_5_khz() -> None:
    limited = band_limit(tone(1000) + tone(7000))
    assert len(limited) == RATE
    assert band_energy(limited, 6500, 7500) < 1e-4 * band_energy(limited, 900, 1100)


def test_every_channel_keeps_length_and_level() -> None:
    rng = __import__("random").Random(0)
    voice = tone(440) + 0.5 * tone(880)
    for name, channel in CHANNELS.items():
        out = channel(voice, rng)
        assert out.shape == voice.shape and np.isfinite(out).all(), name
        rms = float(np.sqrt(np.mean(out**2)))
        assert 0.2 < rms / float(np.sqrt(np.mean(voice**2))) < 2.0, name


def test_room_tone_pads_both_sides_quietly() -> None:
    voice = tone(440)
    padded = pad_with_room_tone(voice, 0.5, 0.25, np.random.default_rng(0))
    head, tail = padded[: RATE // 2], padded[RATE // 2 + RATE :]
    assert len(padded) == RATE + RATE * 3 // 4 and len(tail) == RATE // 4
    np.testing.assert_array_equal(padded[RATE // 2 : RATE // 2 + RATE], voice)
    for side in (head, tail):
        assert 0 < np.sqrt(np.mean(side**2)) < 0.1 * np.sqrt(np.mean(voice**2))


def test_padding_never_takes_a_clip_past_the_encoder_window() -> None:
    config = AugmentConfig(pad=1.0, max_seconds=2.0)
    assert len(Augmenter(config)(tone(440, seconds=1.8))) <= 2 * RATE
    assert len(Augmenter(config)(tone(440, seconds=2.5))) == int(2.5 * RATE)  # no room: untouched


def test_silence_clips_are_quiet_and_added_with_empty_transcripts() -> None:
    clip = silence_clip(np.random.default_rng(1), 1.5)
    assert clip.dtype == np.float32 and len(clip) == int(1.5 * RATE)
    assert np.sqrt(np.mean(clip**2)) < 0.05
    speech = [Utterance(f"u{i}", "x.flac", "words", 1.0) for i in range(20)]
    mixed = add_silence(speech, 0.1, seed=0)
    assert mixed[:20] == speech and len(mixed) == 22
    for extra in mixed[20:]:
        waveform = load_audio(extra.audio)
        assert extra.text == "" and abs(len(waveform) / RATE - extra.duration) < 1e-6
        assert 0.5 <= extra.duration <= 5.0


def test_waveform_augmenter_from_a_config_block() -> None:
    probabilities = {
        "speed": 1,
        "pitch": 1,
        "reverb": 1,
        "noise": 1,
        "channel": 1,
        "specaugment": 0,
        "silence": 0,
    }
    augment = waveform_augmenter(probabilities, seed=0)
    assert augment is not None
    waveform = augment(tone(440))
    assert waveform.dtype == np.float32 and np.isfinite(waveform).all()
    assert 0.85 * RATE <= len(waveform) <= 1.12 * RATE  # speed 0.9-1.1 is the only length change
    assert waveform_augmenter({"specaugment": 0.5, "silence": 0.1}) is None
    assert Augmenter(AugmentConfig(channel=1.0))(tone(440)).shape == (RATE,)
    assert len(Augmenter(AugmentConfig(pad=1.0))(tone(440))) > RATE
    with pytest.raises(UserError, match="unknown augmentation"):
        waveform_augmenter({"echo": 0.5})


def test_feature_augmenter_masks_chosen_examples_only() -> None:
    assert feature_augmenter({"speed": 0.5}) is None
    features = torch.randn(6, 80, 200)
    out = feature_augmenter({"specaugment": 0.5}, seed=1)(features)
    changed = [not torch.equal(out[i], features[i]) for i in range(6)]
    assert out.shape == features.shape and 0 < sum(changed) < 6
    assert all(
        feature_augmenter({"specaugment": 1.0})(features)[i].ne(features[i]).any() for i in range(6)
    )


def test_feature_augmenter_masks_within_each_clip_not_its_padding() -> None:
    features, lengths = torch.randn(4, 80, 300), torch.tensor([300, 40, 120, 12])
    augment = feature_augmenter({"specaugment": 1.0}, seed=3)
    assert augment is not None
    masked = torch.zeros(4, dtype=torch.bool)
    for _ in range(20):
        out = augment(features, lengths)
        for clip, frames in enumerate(lengths.tolist()):
            assert torch.equal(out[clip, :, frames:], features[clip, :, frames:])
            masked[clip] |= not torch.equal(out[clip, :, :frames], features[clip, :, :frames])
    assert masked.all()  # a draw may pick zero-width masks; twenty do not, for every clip


def test_spec_augment_masks_bands_and_frames_without_changing_shape() -> None:
    features = torch.randn(2, 80, 300)
    generator = torch.Generator().manual_seed(0)
    out = spec_augment(
        features, generator, freq_masks=2, freq_mask_width=10, time_masks=2, time_mask_ratio=0.1
    )
    assert out.shape == features.shape and not torch.equal(out, features)
    changed = out != features
    masked_bins = changed.all(dim=-1).any(dim=0).sum()  # whole frequency rows
    masked_frames = changed.all(dim=-2).any(dim=0).sum()  # whole time columns
    assert 1 <= masked_bins <= 20 and 1 <= masked_frames <= 60
    assert torch.equal(features, features.clone())  # input untouched


def test_data_channel_writes_one_channel_a_clip_as_its_slice(tmp_path: Path) -> None:
    clips = []
    for index in range(len(CHANNELS) + 1):
        path = tmp_path / f"clip{index}.flac"
        sf.write(path, tone(300 + 100 * index), RATE)
        clips.append(Utterance(f"c{index}", str(path), f"clip {index}", 1.0, "someone", "lab"))
    write_manifest(tmp_path / "dev.jsonl", clips)
    out = tmp_path / "noisy" / "dev.jsonl"
    result = CliRunner().invoke(
        cli, ["data", "channel", str(tmp_path / "dev.jsonl"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = read_manifest(out)
    assert [u.source for u in written] == [*CHANNELS, next(iter(CHANNELS))]  # in turn
    for original, copy in zip(clips, written):
        assert (copy.text, copy.speaker) == (original.text, original.speaker)
        heard = load_audio(copy.audio)
        assert len(heard) == RATE and not np.allclose(heard, load_audio(original.audio), atol=1e-3)

    result = CliRunner().invoke(
        cli,
        [
            "data",
            "channel",
            str(tmp_path / "dev.jsonl"),
            "--out",
            str(out),
            "--channels",
            "mp3,fax",
        ],
    )
    assert result.exit_code == 1 and result.output.startswith("error: unknown channel fax")
