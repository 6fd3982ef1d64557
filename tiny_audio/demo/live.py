"""The live microphone: a transcript that grows while you speak.

Audio arrives in chunks of about half a second. The stretch since the last final point is heard
again as it grows and shown as a tentative tail. When the voice-activity detector finds a pause
after speech, that stretch is heard once more and its text becomes final; speech that runs a
whole window without a pause is finalised at the window's end, and the next window starts a
stride earlier so that a word cut at the edge is whole in it (`merge_overlap` drops the repeat).

The model never runs in Gradio's handler, which must keep up with the chunks: `add` stores the
chunk and wakes one worker thread per recording, which hears what has arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.model.windows import merge_overlap, speech_windows

PAUSE_S = 0.5  # silence after speech (beyond the detector's padding) that ends an utterance
LEAD_S = 0.5  # silence kept before speech starts, so its first sound is not cut

Hear = Callable[[np.ndarray], str]  # 16 kHz mono audio -> its text


class LiveTranscript:
    """One recording's transcript, heard while it grows; `add` never waits for the model."""

    def __init__(self, hear: Hear, window_s: float, stride_s: float) -> None:
        self._hear = hear
        self._window_s = window_s
        self._window = int(window_s * SAMPLE_RATE)
        self._stride = int(min(stride_s, window_s / 2) * SAMPLE_RATE)
        self._lock = threading.Lock()  # guards the fields below that the page reads
        self._arrived: list[np.ndarray] = []
        self._worker: threading.Thread | None = None
        self._stopped = False
        self._error: Exception | None = None
        self._final = ""
        self._tentative = ""
        # The worker's own: audio since the last final point, and whether it begins with the
        # end of the last finalised window.
        self._pending = np.zeros(0, dtype=np.float32)
        self._overlaps = False

    @property
    def text(self) -> str:
        with self._lock:
            if self._error is not None:
                raise self._error
            return " ".join(part for part in (self._final, self._tentative) if part)

    def add(self, audio: np.ndarray) -> None:
        """Queue a chunk of 16 kHz mono audio; the worker hears it when the model is free."""
        with self._lock:
            if self._stopped:  # a chunk sent after the recording stopped
                return
            self._arrived.append(audio)
            if self._worker is None:
                self._worker = threading.Thread(target=self._catch_up, daemon=True)
                self._worker.start()

    def finish(self) -> str:
        """Hear everything that arrived and make it final: the recording has stopped."""
        with self._lock:
            self._stopped, worker = True, self._worker
        if worker is not None:
            worker.join()
        self._catch_up()  # what arrived after the worker's last look
        if self._speech_end() is not None:
            self._finalise(len(self._pending), len(self._pending))
        return self.text

    def _catch_up(self) -> None:
        """Take the chunks one by one, so that every pause is seen; the tentative tail is heard
        only once no chunk waits (a worker that fell behind does not hear stale tails)."""
        try:
            while (chunk := self._next_chunk()) is not None:
                self._pending = np.concatenate([self._pending, chunk])
                if self._finalise_ready() and self._caught_up():
                    tentative = self._merged(self._hear(self._pending))
                    with self._lock:
                        self._tentative = tentative
        except Exception as error:  # shown on the page by the next `text`
            with self._lock:
                self._error, self._worker = error, None

    def _next_chunk(self) -> np.ndarray | None:
        with self._lock:
            if not self._arrived:
                self._worker = None  # under the lock: `add` starts a new worker from here on
                return None
            return self._arrived.pop(0)

    def _caught_up(self) -> bool:
        with self._lock:
            return not self._arrived

    def _finalise_ready(self) -> bool:
        """Make final what a pause or a full window ends; whether speech is left pending."""
        while True:
            end = self._speech_end()
            if end is None:  # no speech yet: keep only a lead-in
                self._pending = self._pending[-int(LEAD_S * SAMPLE_RATE) :]
                self._overlaps = False
                with self._lock:
                    self._tentative = ""
                return False
            if len(self._pending) - end >= PAUSE_S * SAMPLE_RATE:
                self._finalise(end, end)
            elif len(self._pending) >= self._window:
                self._finalise(self._window, self._window - self._stride)
            else:
                return True

    def _speech_end(self) -> int | None:
        """Where the last speech in the pending audio ends (its length where no detector is
        installed: then only a full window is finalised); None where it holds no speech."""
        if len(self._pending) == 0:
            return None
        windows = speech_windows(self._pending, self._window_s)
        if windows is None:
            return len(self._pending)
        return windows[-1][1] if windows else None

    def _finalise(self, end: int, keep_from: int) -> None:
        text = self._merged(self._hear(self._pending[:end]))
        with self._lock:
            self._final = " ".join(part for part in (self._final, text) if part)
            self._tentative = ""
        self._pending = self._pending[keep_from:]
        self._overlaps = keep_from < end

    def _merged(self, text: str) -> str:
        with self._lock:
            final = self._final
        return merge_overlap(final, text) if self._overlaps else text
