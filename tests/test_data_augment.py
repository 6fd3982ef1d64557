"""Augmentations: output rate, length and the property each one promises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_audio.audio import load_audio
from tiny_audio.data.augment import (
    AugmentConfig,
    Augmenter,
    add_noise,
    add_silence,
    change_speed,
    colored_noise,
    feature_augmenter,
    reverberate,
    room_impulse_response,
    shift_pitch,
    silence_clip,
    spec_augment,
    telephone,
    waveform_augmenter,
)
from tiny_audio.data.manifest import Utterance
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


def test_telephone_keeps_length_and_drops_out_of_band_energy() -> None:
    mix = tone(1000) + tone(6000) + tone(100)
    phone = telephone(mix)
    assert phone.dtype == np.float32 and len(phone) == len(mix)
    assert band_energy(phone, 5000, 7000) < 1e-3 * band_energy(phone, 900, 1100)
    assert band_energy(phone, 80, 120) < 0.05 * band_energy(phone, 900, 1100)


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
        "telephone": 1,
        "specaugment": 0,
        "silence": 0,
    }
    augment = waveform_augmenter(probabilities, seed=0)
    assert augment is not None
    waveform = augment(tone(440))
    assert waveform.dtype == np.float32 and np.isfinite(waveform).all()
    assert 0.85 * RATE <= len(waveform) <= 1.12 * RATE  # speed 0.9-1.1 is the only length change
    assert waveform_augmenter({"specaugment": 0.5, "silence": 0.1}) is None
    assert Augmenter(AugmentConfig(telephone=1.0))(tone(440)).shape == (RATE,)
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
