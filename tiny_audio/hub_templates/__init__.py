"""Files `ta push` and `ta deploy` fill in and publish: the model card and the Gradio Space."""
