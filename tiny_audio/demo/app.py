"""`ta demo`: a Gradio page that transcribes uploaded or recorded speech with one model.

Gradio is imported inside functions: `ta demo --help` should not wait for it."""

from __future__ import annotations

import functools
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tiny_audio.demo.limits import MAX_AUDIO_S, MAX_UPLOAD_MB, check_duration
from tiny_audio.demo.live import LiveTranscript
from tiny_audio.demo.serving import private_upload_folder
from tiny_audio.errors import UserError
from tiny_audio.recognizer import model_option

if TYPE_CHECKING:
    import gradio as gr

    from tiny_audio.recognizer import Recognizer

TITLE = "tiny-audio demo"
DEFAULT_WINDOW_S = 30.0  # the chunk-length slider's start for a recognizer without a config


def example_clips() -> list[str]:
    """The first clip of each `ta data real` slice built on this machine (none before it ran)."""
    from tiny_audio.data import read_manifest
    from tiny_audio.data.real import SLICES
    from tiny_audio.data.sources import data_home

    manifests = [data_home() / "real" / f"{name}.jsonl" for name in SLICES]
    firsts = [read_manifest(path)[:1] for path in manifests if path.is_file()]
    return [str(utterances[0].audio) for utterances in firsts if utterances]


def model_info(recognizer: Recognizer) -> str:
    """Markdown: the recognizer's parts (a tiny-audio model's), or just its name."""
    rows = recognizer.describe()
    if not rows:
        return f"**Model:** `{recognizer.name}`"
    header = [f"| Model | `{recognizer.name}` |", "|---|---|"]
    return "\n".join([*header, *(f"| {key} | `{value}` |" for key, value in rows)])


def decoding_options(
    recognizer: Recognizer,
    num_beams: float,
    max_new_tokens: float,
    chunk_length_s: float,
    stride_length_s: float,
    prompt: str | None,
) -> dict[str, Any]:
    """The page's settings as transcribe() options, only those the recognizer acts on."""
    options = {
        "num_beams": int(num_beams),
        "max_new_tokens": int(max_new_tokens) or None,  # 0: scaled to the audio length
        "chunk_length_s": float(chunk_length_s),
        "stride_length_s": float(stride_length_s),
        "prompt": (prompt or "").strip() or None,  # a hidden textbox sends None
    }
    return {name: value for name, value in options.items() if name in recognizer.transcribe_options}


def page_message(error: UserError, path: str) -> str:
    """The error with the file's own name instead of Gradio's long temporary upload path."""
    text = str(error)
    if not text.startswith(f"{path}: "):
        return text
    reason = text.removeprefix(f"{path}: ").split(" (")[0]  # the details repeat the path
    return f"{Path(path).name}: {reason}"


def transcribe(
    recognizer: Recognizer,
    path: str | None,
    num_beams: float,
    max_new_tokens: float,
    chunk_length_s: float,
    stride_length_s: float,
    prompt: str | None,
    word_timestamps: bool = False,
) -> tuple[str, str]:
    """(transcript, timing) for one file, the transcript as timed lines of a few words each
    with `word_timestamps`; unusable audio becomes a message on the page."""
    import gradio as gr

    from tiny_audio.audio import duration_seconds, load_audio
    from tiny_audio.subtitles import DEFAULT_WORDS_PER_CUE, cues_from_words, to_timed_lines
    from tiny_audio.timestamps import transcribe_timed

    if not path:
        raise gr.Error("Upload or record some audio first.", print_exception=False)
    options = decoding_options(
        recognizer, num_beams, max_new_tokens, chunk_length_s, stride_length_s, prompt
    )
    try:
        check_duration(path)
        waveform = load_audio(path)
        start = time.perf_counter()
        timed = transcribe_timed(recognizer, [waveform], 1, word_timestamps, **options)[0]
    except UserError as error:
        raise gr.Error(page_message(error, path), print_exception=False) from None
    seconds = time.perf_counter() - start
    text = (
        timed.text
        if timed.words is None
        else to_timed_lines(cues_from_words(timed.words, DEFAULT_WORDS_PER_CUE))
    )
    audio_seconds = duration_seconds(waveform)
    timing = (
        f"{audio_seconds:.1f} s of audio in {seconds:.2f} s (RTFx {audio_seconds / seconds:.1f})"
    )
    return text, timing


def hear_live(
    recognizer: Recognizer,
    chunk: str | None,
    live: LiveTranscript | None,
    num_beams: float,
    max_new_tokens: float,
    chunk_length_s: float,
    stride_length_s: float,
    prompt: str | None,
) -> tuple[str, LiveTranscript | None]:
    """One streamed chunk of the microphone, queued for the model: (transcript so far, state)."""
    import gradio as gr

    from tiny_audio.audio import AudioWarning, load_audio

    try:
        if chunk is not None:
            try:
                with warnings.catch_warnings():  # a streamed chunk's header gives no true length
                    warnings.simplefilter("ignore", AudioWarning)
                    audio = load_audio(chunk)
            finally:
                Path(chunk).unlink(missing_ok=True)  # heard once, never kept on disk
            if live is None:  # the recording's first chunk: its settings hold to its end
                options = decoding_options(
                    recognizer, num_beams, max_new_tokens, chunk_length_s, stride_length_s, prompt
                )
                live = LiveTranscript(
                    lambda window: recognizer.transcribe([window], **options)[0],
                    chunk_length_s,
                    stride_length_s,
                )
            live.add(audio)
        return (live.text if live else ""), live
    except UserError as error:
        raise gr.Error(page_message(error, chunk or ""), print_exception=False) from None


def finish_live(live: LiveTranscript | None) -> str:
    """The recording stopped: everything heard, the last words made final."""
    return live.finish() if live else ""


def build_app(recognizer: Recognizer) -> gr.Blocks:
    import gradio as gr

    shown = recognizer.transcribe_options  # the page shows only the settings it acts on
    config = getattr(recognizer, "config", None)
    # The model's own window, overlapping by a sixth as split_windows does by default.
    window = float(getattr(config, "max_audio_seconds", DEFAULT_WINDOW_S))
    clips = example_clips()
    hint = "" if clips else " `ta data real` adds example clips here."
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(
            f"# {TITLE}\nUpload or record speech, then press **Transcribe**, or speak into the "
            f"live microphone and watch the transcript grow.{hint}"
        )
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="Speech",
                    elem_id="audio",
                )
                if clips:
                    gr.Examples([[clip] for clip in clips], [audio], label="Example clips")
                button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
                word_timestamps = gr.Checkbox(
                    label="Word timestamps", value=False, elem_id="word-timestamps"
                )
                live_audio = gr.Audio(
                    sources=["microphone"],
                    streaming=True,
                    type="filepath",
                    label=f"Live microphone (up to {MAX_AUDIO_S // 60} minutes)",
                    elem_id="live",
                )
                live = gr.State(None)
                prompt = gr.Textbox(
                    label="Context prompt",
                    placeholder="Optional: names or words to expect",
                    visible="prompt" in shown,
                    elem_id="prompt",
                )
                with gr.Accordion("Generation settings", open=True):
                    num_beams = gr.Slider(1, 8, value=1, step=1, label="Beams")
                    max_new_tokens = gr.Slider(
                        0, 448, value=0, step=1, label="Max new tokens",
                        info="0: scaled to the audio length",
                        visible="max_new_tokens" in shown, elem_id="max-new-tokens",
                    )  # fmt: skip
                    chunk_length_s = gr.Slider(
                        5, max(window, DEFAULT_WINDOW_S), value=window, step=1,
                        label="Chunk length (s)",
                        info="Longer audio is split into windows this long",
                        visible="chunk_length_s" in shown, elem_id="chunk-length",
                    )  # fmt: skip
                    stride_length_s = gr.Slider(
                        0, 10, value=round(window / 6, 1), step=0.1, label="Stride (s)",
                        info="Overlap between windows",
                        visible="stride_length_s" in shown, elem_id="stride-length",
                    )  # fmt: skip
            with gr.Column():
                transcript = gr.Textbox(
                    label="Transcript", lines=6, buttons=["copy"], elem_id="transcript"
                )
                timing = gr.Textbox(label="Timing", elem_id="timing")
                gr.Markdown(model_info(recognizer), elem_id="model-info")
        inputs = [audio, num_beams, max_new_tokens, chunk_length_s, stride_length_s, prompt]
        button.click(
            functools.partial(transcribe, recognizer),
            [*inputs, word_timestamps],
            [transcript, timing],
            api_name="transcribe",
        )
        live_audio.start_recording(
            lambda: (None, "", ""), None, [live, transcript, timing], queue=False
        )
        live_audio.stream(
            functools.partial(hear_live, recognizer),
            [live_audio, live, *inputs[1:]],
            [transcript, live],
            time_limit=MAX_AUDIO_S,
            show_progress="hidden",
            api_name=False,  # type: ignore[arg-type]  # False hides the event from the API
        )
        live_audio.stop_recording(finish_live, live, transcript, show_progress="hidden")
        # A new recording makes the previous result stale.
        audio.change(
            lambda: ("", ""), None, [transcript, timing], queue=False, show_progress="hidden"
        )
    return app


@click.command("demo")
@model_option
@click.option("-p", "--port", default=7860, show_default=True, help="Port to serve on.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve on (0.0.0.0: the local network).",
)
@click.option("--share", is_flag=True, help="Also serve a temporary public gradio.live link.")  # fmt: skip
@click.option(
    "-w",
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Transcriptions (and live recordings) served at once; the rest wait in line.",
)
def demo(model: str, port: int, host: str, share: bool, workers: int) -> None:
    """Launch a web page to upload or record speech and read the transcript."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline first
    from rich.console import Console

    from tiny_audio.recognizer import load_recognizer

    with Console(stderr=True).status(f"loading {model}"):
        recognizer = load_recognizer(model)
    try:
        with private_upload_folder():
            app = build_app(recognizer)
            app.queue(default_concurrency_limit=workers).launch(
                server_name=host,
                server_port=port,
                share=share,
                show_error=True,
                max_file_size=f"{MAX_UPLOAD_MB}mb",
                quiet=True,  # Gradio's hints name its own launch() arguments, not ta's options
                prevent_thread_lock=True,
            )
            share_hint = "" if share else "; --share adds a public gradio.live link"
            click.echo(f"{model} on {app.local_url} (Ctrl-C stops it{share_hint})", err=True)
            app.block_thread()
    except OSError as error:  # the port is taken or the address is not ours
        reason = str(error).split(". ")[0]  # Gradio goes on about its own launch() arguments
        raise UserError(f"cannot serve on {host}:{port} ({reason}); try another --port") from None
