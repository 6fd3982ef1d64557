"""Word timestamps: the CTC path of LaCT, Whisper's alignment of any transcript, subtitle cues
that never overlap, and `ta transcribe --word-timestamps` / `pipeline(return_timestamps="word")`
end to end. Tests marked slow use the zoo's real Whisper tiny.en and real clips."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from helpers import save_tiny_model, tiny_config, tone_file

from tiny_audio.audio import SAMPLE_RATE, load_audio
from tiny_audio.cli import cli
from tiny_audio.evaluate.joined import Span, trim_silence
from tiny_audio.evaluate.word_timing import boundary_errors
from tiny_audio.lact.alignment import ctc_words, label_frames, pause_cuts
from tiny_audio.model.alignment import Word, off_pauses, word_bounds
from tiny_audio.subtitles import cues_from_segments, cues_from_words, to_srt, to_vtt

BLANK = 0


def peaked(frames: int, peaks: dict[int, int], vocab: int = 5) -> np.ndarray:
    """(frames, vocab) log-probs: the blank everywhere except label `peaks[frame]` there."""
    probs = np.full((frames, vocab), 0.01)
    probs[:, BLANK] = 1.0
    for frame, label in peaks.items():
        probs[frame] = 0.01
        probs[frame, label] = 1.0
    return np.log(probs / probs.sum(axis=1, keepdims=True))


def test_ctc_path_puts_each_label_on_its_peak_and_repeats_apart() -> None:
    log_probs = peaked(12, {2: 1, 3: 2, 6: 2, 9: 3})
    assert label_frames(log_probs, [1, 2, 2, 3], BLANK) == [(2, 2), (3, 3), (6, 6), (9, 9)]


def test_ctc_words_span_first_to_last_character_of_each_word() -> None:
    # "ab c": a at frame 1, b at 3, the space at 5, c at 8; frames of 40 ms from 10 s on.
    log_probs = peaked(10, {1: 1, 3: 2, 5: 4, 8: 3})
    words = ctc_words(log_probs, "ab c", [1, 2, 4, 3], BLANK, 0.04, offset_s=10.0)
    assert [w.word for w in words] == ["ab", "c"]
    assert words[0].start == pytest.approx(10.04) and words[0].end == pytest.approx(10.16)
    assert words[1].start == pytest.approx(10.32) and words[1].end == pytest.approx(10.36)


def test_pause_cuts_cover_every_frame_and_cut_only_long_blank_runs() -> None:
    # Labels at 0-1 and 3 (a short gap) and at 20 (after a 16-frame pause) in 40 ms frames.
    log_probs = peaked(24, {0: 1, 1: 2, 3: 1, 20: 3})
    pieces = pause_cuts(log_probs, BLANK, 0.04)
    assert [(p.start, p.stop) for p in pieces] == [(0, 12), (12, 24)]


def test_word_bounds_read_token_starts_off_the_warping_path() -> None:
    # Tokens 0,1 (word one), 2 (word two), then end-of-text 3; frames of 20 ms.
    path = [(0, 0), (0, 1), (1, 2), (1, 3), (2, 10), (2, 11), (3, 15), (3, 16)]
    assert word_bounds(path, [2, 1]) == [(0.0, 0.2), (0.2, 0.3)]


def test_a_word_next_to_a_pause_stops_where_speech_does() -> None:
    speech = [(0.0, 2.6), (3.8, 5.0)]
    assert off_pauses(1.9, 3.9, speech) == (1.9, 2.6)  # mostly before the pause
    assert off_pauses(2.7, 4.4, speech) == (3.8, 4.4)  # mostly after it
    assert off_pauses(2.7, 3.0, speech) == (2.7, 3.0)  # no speech: left as it is


def test_word_cues_hold_at_most_n_words_and_break_at_long_pauses() -> None:
    words = [Word(f"w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(5)]
    words.append(Word("late", 5.0, 5.4))
    cues = cues_from_words(words, words_per_cue=3)
    assert [c.text for c in cues] == ["w0 w1 w2", "w3 w4", "late"]
    assert (cues[0].start, cues[0].end) == (0.0, 1.4)


def test_cues_of_overlapping_windows_do_not_overlap() -> None:
    class Segment:
        def __init__(self, start: float, end: float, text: str) -> None:
            self.start, self.end, self.text = start, end, text

    cues = cues_from_segments([Segment(0, 30, "one"), Segment(25, 49, "two"), Segment(45, 50, "")])
    assert [(c.start, c.end) for c in cues] == [(0, 30), (30, 49)]
    assert to_srt(cues).splitlines()[:3] == ["1", "00:00:00,000 --> 00:00:30,000", "one"]
    vtt = to_vtt(cues).splitlines()
    assert vtt[0] == "WEBVTT" and "00:00:30.000 --> 00:00:49.000" in vtt


def test_lact_words_spell_its_transcript_within_the_clip(tone: np.ndarray) -> None:
    import torch

    from tiny_audio.lact.model import LaCTForCTC

    torch.manual_seed(0)
    model = LaCTForCTC(tiny_config()).eval()
    with torch.no_grad():  # a random model says little: make it say something
        model.ctc_head.bias[model.tokenizer.blank_id] = -5.0
    clip = np.concatenate([tone, np.zeros(SAMPLE_RATE, np.float32), tone])
    words = model.transcribe_words([clip])[0]
    assert " ".join(w.word for w in words) == model.transcribe([clip])[0]
    assert words, "the random model should say something"
    times = [t for w in words for t in (w.start, w.end)]
    assert times == sorted(times) and times[0] >= 0 and times[-1] <= len(clip) / SAMPLE_RATE


def test_boundary_error_takes_each_clips_first_start_and_last_end() -> None:
    spans = [Span(1.0, 2.0, "a b"), Span(3.0, 4.0, "c d"), Span(6.0, 7.0, "e")]
    words = [Word("a", 1.1, 1.5), Word("b", 1.5, 2.2), Word("c", 2.9, 3.5), Word("d", 3.5, 4.0)]
    errors = boundary_errors(words, spans)
    assert errors["missed"] == 1
    assert errors["start_mae_s"] == pytest.approx(0.1)
    assert errors["end_mae_s"] == pytest.approx(0.1)


def test_trim_silence_keeps_the_loud_part(tone: np.ndarray) -> None:
    quiet = np.zeros(SAMPLE_RATE // 2, np.float32)
    assert len(trim_silence(np.concatenate([quiet, tone, quiet]))) == len(tone)


def timed_lines(text: str) -> list[tuple[str, str]]:
    return re.findall(r"(\d\d:\d\d:\d\d[.,]\d{3}) --> (\d\d:\d\d:\d\d[.,]\d{3})", text)


def test_vtt_without_word_times_and_cue_option_without_them(
    tiny_parts: dict[str, str], tmp_path: Path
) -> None:
    model = str(save_tiny_model(tmp_path / "model", tiny_parts))
    clip = str(tone_file(tmp_path / "tone.wav", 300, seconds=5.0))
    common = [clip, "-m", model, "--max-new-tokens", "2", "--no-vad"]
    windows = ["--chunk-length-s", "2", "--stride-length-s", "0.5"]
    vtt = CliRunner().invoke(cli, ["transcribe", *common, *windows, "--format", "vtt"])
    assert vtt.exit_code == 0, vtt.output
    assert vtt.stdout.startswith("WEBVTT")
    spans = [(a, b) for a, b in timed_lines(vtt.stdout)]
    assert len(spans) >= 2 and all(b <= a for (_, b), (a, _) in itertools.pairwise(spans))
    lonely = CliRunner().invoke(cli, ["transcribe", *common, "--words-per-cue", "2"])
    assert lonely.exit_code == 2
    assert "'--words-per-cue': needs --word-timestamps" in lonely.output


# ---- with the zoo's Whisper tiny.en as the aligner, on real speech --------------------------


def real_clips(count: int) -> list[tuple[np.ndarray, str]]:
    from tiny_audio.data.sources import load_source

    try:
        utterances = [u for u in load_source("real", split="test") if len(u.text.split()) >= 3]
    except Exception as error:  # any reason the slices are missing
        pytest.skip(f"no real clips ({error}): run `ta data real`")
    return [(trim_silence(load_audio(u.audio)), u.text) for u in utterances[:count]]


@pytest.mark.slow
def test_aligner_finds_the_silence_between_two_real_clips() -> None:
    from tiny_audio.model.alignment import load_aligner

    (first, first_text), (second, second_text) = real_clips(2)
    gap = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
    recording = np.concatenate([first, gap, second])
    boundary_end, boundary_start = len(first) / SAMPLE_RATE, (len(first) + len(gap)) / SAMPLE_RATE
    words = load_aligner().align([(recording, f"{first_text} {second_text}")])[0]
    assert [w.word for w in words] == f"{first_text} {second_text}".split()
    last_of_first = words[len(first_text.split()) - 1]
    first_of_second = words[len(first_text.split())]
    assert abs(last_of_first.end - boundary_end) < 0.3
    assert abs(first_of_second.start - boundary_start) < 0.3


@pytest.mark.slow
def test_word_timestamps_in_every_output_format(tiny_parts: dict[str, str], tmp_path: Path) -> None:
    model = str(save_tiny_model(tmp_path / "model", tiny_parts))
    ((speech, _),) = real_clips(1)
    clip = tmp_path / "speech.wav"
    sf.write(clip, speech, SAMPLE_RATE)
    common = [str(clip), "-m", model, "--max-new-tokens", "6", "--word-timestamps"]
    outputs = {}
    for output_format in ("json", "srt", "vtt", "text"):
        result = CliRunner().invoke(
            cli, ["transcribe", *common, "--format", output_format, "--words-per-cue", "2"]
        )
        assert result.exit_code == 0, result.output
        outputs[output_format] = result.stdout
    transcript = json.loads(outputs["json"])
    words = transcript["words"]
    assert " ".join(w["word"] for w in words) == transcript["text"]
    times = [t for w in words for t in (w["start"], w["end"])]
    assert times == sorted(times) and times[-1] <= transcript["duration"] + 0.02
    for output_format in ("srt", "vtt", "text"):
        assert len(timed_lines(outputs[output_format])) == (len(words) + 1) // 2, output_format


@pytest.mark.slow
def test_pipeline_returns_word_chunks(tiny_parts: dict[str, str], tmp_path: Path) -> None:
    from transformers import pipeline

    folder = save_tiny_model(tmp_path / "model", tiny_parts)
    ((speech, _),) = real_clips(1)
    asr = pipeline("automatic-speech-recognition", model=str(folder), trust_remote_code=True)
    result = asr(speech, max_new_tokens=6, return_timestamps="word")
    assert [chunk["text"] for chunk in result["chunks"]] == result["text"].split()
    assert all(a <= b for chunk in result["chunks"] for a, b in [chunk["timestamp"]])


@pytest.mark.slow
def test_demo_shows_timed_lines_when_asked(tiny_parts: dict[str, str], tmp_path: Path) -> None:
    from tiny_audio.demo.app import transcribe
    from tiny_audio.recognizer import load_recognizer

    recognizer = load_recognizer(str(save_tiny_model(tmp_path / "model", tiny_parts)))
    ((speech, _),) = real_clips(1)
    clip = tmp_path / "speech.wav"
    sf.write(clip, speech, SAMPLE_RATE)
    plain, _ = transcribe(recognizer, str(clip), 1, 4, 30, 5, None)
    timed, _ = transcribe(recognizer, str(clip), 1, 4, 30, 5, None, True)
    assert not timed_lines(plain)
    lines = timed.splitlines()
    assert lines and all(timed_lines(line) for line in lines)
    assert " ".join(line.split("] ", 1)[1] for line in lines) == plain
