"""The folder `ta deploy` uploads: a Gradio Space (app.py, requirements.txt, README.md metadata)
that transcribes speech with a Hub model or with a model folder shipped inside the Space."""

from __future__ import annotations

import json
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from tiny_audio.errors import UserError
from tiny_audio.hub.card import CARD_FILE, template
from tiny_audio.hub.families import Family, resolve_model, write_tiny_audio_code
from tiny_audio.hub.model_folder import REQUIREMENTS_FILE, requirements, write_model_folder

APP_FILE = "app.py"
BUNDLED_MODEL_DIR = "model"  # inside a Space folder, when the model ships with the app
PREINSTALLED_ON_SPACES = {"gradio"}  # the Space's sdk_version pins it


def space_model(model: str) -> tuple[str, tuple[Path, Family] | None]:
    """(what app.py loads, the local model folder and family to bundle with the Space or None)."""
    from tiny_audio.zoo import BUNDLED

    if Path(model).expanduser().is_dir() or model in BUNDLED:
        return BUNDLED_MODEL_DIR, resolve_model(model)
    if model.count("/") == 1:
        return model, None
    raise UserError(
        f"{model}: not a model folder, a bundled model ({', '.join(BUNDLED) or 'none yet'}) "
        "or a Hub id (user/name)"
    )


def write_space_folder(
    destination: Path, *, space_id: str, loads: str, local_model: tuple[Path, Family] | None
) -> None:
    """app.py, requirements.txt and README.md (Space metadata) for a Gradio Space whose app
    loads `loads` (see `space_model`); a local model is copied into the Space."""
    import gradio

    title = f"{space_id.split('/')[-1]} speech recognition"
    app = files("tiny_audio.hub_templates").joinpath("space_app.py").read_text()
    app = app.replace('"__MODEL__"', json.dumps(loads)).replace('"__TITLE__"', json.dumps(title))
    (destination / APP_FILE).write_text(app)

    with tempfile.TemporaryDirectory() as scratch:
        if local_model is not None:
            code_dir = destination / BUNDLED_MODEL_DIR
            write_model_folder(*local_model, code_dir, model_id=space_id)
        else:  # a pushed tiny-audio model: it runs this package's remote code
            code_dir = Path(scratch)
            write_tiny_audio_code(code_dir)
        code = [destination / APP_FILE, *code_dir.glob("*.py")]
        (destination / REQUIREMENTS_FILE).write_text(
            requirements(code, leave_out=PREINSTALLED_ON_SPACES)
        )

    metadata: dict[str, Any] = {
        "title": title,
        "emoji": "🎙️",
        "colorFrom": "indigo",
        "colorTo": "blue",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "app_file": APP_FILE,
        "pinned": False,
        "short_description": "Speech recognition with a tiny-audio model",
    }
    if local_model is None:
        metadata["models"] = [loads]
    link = (
        f"[{loads}](https://huggingface.co/{loads})" if local_model is None else "the bundled model"
    )
    readme = template("space_readme.md").substitute(
        metadata=yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True),
        title=title,
        model_link=link,
    )
    (destination / CARD_FILE).write_text(readme)
