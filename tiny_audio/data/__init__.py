"""Speech data: manifests, named sources, synthetic and real corpora, augmentation.

- `manifest`: the JSONL format (`Utterance`, `read_manifest`, `write_manifest`).
- `sources.load_source(name, split, max_samples)`: one entry point for training and eval.
- `synth` (`ta data synth`, with `voices` and `texts`) and `real` (`ta data real`) build corpora.
- `augment`: waveform, feature and embedding augmentations; `stats`: corpus figures.
"""

from tiny_audio.data.manifest import Utterance, read_manifest, write_manifest

__all__ = ["Utterance", "read_manifest", "write_manifest"]
