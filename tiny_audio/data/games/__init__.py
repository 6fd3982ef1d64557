"""Recorded English speech for training: the voice acting of three freeware adventure games
that Debian ships for ScummVM, each line of speech paired with its subtitle text.

Each game is a module with `lines(root) -> Iterator[Line]`, reading the unpacked Debian
package under `root`; `build.py` turns the lines into split manifests.
"""

from __future__ import annotations

from dataclasses import dataclass

from tiny_audio.audio import AudioInput


@dataclass(frozen=True)
class Line:
    id: str  # unique within the game and stable across builds, e.g. "queen-JOE1r2.SB"
    audio: AudioInput  # encoded bytes (MP3) or a (samples, rate) pair
    text: str  # the subtitle exactly as the game stores it
    speaker: str  # the character speaking, or "" where the game does not say
    scene: str  # the dialogue, room or text section the line belongs to


@dataclass(frozen=True)
class Game:
    package: str  # the Debian package
    module: str  # the module under tiny_audio.data.games with `lines(root)`
    description: str


GAMES: dict[str, Game] = {
    "queen": Game("flight-of-the-amazon-queen", "queen", "Flight of the Amazon Queen (CD talkie)"),
    "sky": Game("beneath-a-steel-sky", "sky", "Beneath a Steel Sky (CD)"),
    "drascula": Game("drascula", "drascula", "Drascula: The Vampire Strikes Back"),
}
