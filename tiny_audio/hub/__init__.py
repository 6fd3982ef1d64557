"""Publish on the Hugging Face Hub: a trained model as a model repo with its card (`ta push`),
and a Gradio Space that serves a model (`ta deploy`).

- `families`: what publishing differs in between tiny-audio (LLM) and LaCT models.
- `card`: the model card; `model_folder`: the model repo's files; `space`: the Space's files.
- `commands`: the two commands, which write a folder and upload it.
"""

from tiny_audio.hub.commands import deploy_command, push_command

__all__ = ["deploy_command", "push_command"]
