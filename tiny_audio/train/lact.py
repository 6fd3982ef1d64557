"""The LaCT recipe: speech sources -> log-mel batches -> CTC loss -> checkpoints.

`ta train +experiments=lact_tiny` composes tiny_audio/configs/config.yaml with a lact_* preset
(family/lact.yaml) and calls `train(cfg)` here (model.family == "lact"). `model.*` are LaCTConfig
fields, `training.*` TrainingArgs fields (names shared with the tiny-audio recipe, trainer.py,
where they mean the same thing) and `data.*` DataArgs fields: `ta train` refuses any other key.
`data.train` / `data.dev` name sources for tiny_audio.data.sources.load_source; `data.augment`
is the same augmentation block as the tiny-audio recipe's (waveform augmentations, SpecAugment
on the log-mels, extra silent clips), applied to training batches only. The schedule, precision
setting, augmenters, checkpoints and run folder are the shared ones (components.py,
checkpoint.py, run_folder.py); dev CER and WER are scored by tiny_audio.evaluate.metrics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from tiny_audio.data.manifest import Utterance
from tiny_audio.data.sources import source_specs
from tiny_audio.errors import UserError
from tiny_audio.lact.config import LaCTConfig
from tiny_audio.lact.lm import CharLM
from tiny_audio.lact.model import LaCTForCTC, LogMel
from tiny_audio.lact.tokenizer import CharTokenizer
from tiny_audio.train import checkpoint as ckpt
from tiny_audio.train import run_folder
from tiny_audio.train.components import augmenters, bf16_enabled, lr_lambda
from tiny_audio.train.main import FAMILY_KEY

if TYPE_CHECKING:
    from tiny_audio.data.augment import FeatureAugmenter


@dataclass
class TrainingArgs:
    output_dir: str = "outputs/lact"
    max_steps: int = 100_000
    max_minutes: float | None = None  # wall-clock budget: stop at whichever limit comes first
    per_device_train_batch_size: int = 12
    gradient_accumulation_steps: int = 2
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 2000
    lr_scheduler: str = "cosine"  # a name in tiny_audio.train.components.SCHEDULES
    max_grad_norm: float = 1.0
    max_nonfinite_steps: int = 20  # give up after this many skipped steps in a row
    bf16: bool | str = (
        False  # True: bf16 autocast; "auto": where CUDA supports it. Fast weights stay fp32
    )
    logging_steps: int = 50
    sample_steps: int = 500
    eval_steps: int = 1000
    save_steps: int = 5000
    save_total_limit: int = 3  # newest checkpoints kept, besides the one best/ points to
    num_workers: int = 0
    resume_from_checkpoint: str | None = None  # a checkpoint directory, or "latest" in output_dir
    device: str = "auto"
    num_threads: int | None = None
    lm_order: int = 6  # character LM for beam search, fitted on the training transcripts; 0: none


@dataclass
class DataArgs:
    train: list[dict[str, Any]] = dataclasses.field(
        default_factory=list
    )  # [{source, max_samples?}]
    dev: dict[str, Any] | list[dict[str, Any]] = dataclasses.field(
        default_factory=dict
    )  # a spec or several
    augment: dict[str, float] = dataclasses.field(default_factory=dict)  # name -> probability
    min_duration_s: float = 0.3
    max_duration_s: float = 20.0


def _settings(section: Any) -> dict[str, Any]:
    """A config section's keys and values; `ta train` has checked that this family reads each."""
    values = OmegaConf.to_container(section, resolve=True) if section is not None else {}
    assert isinstance(values, dict)
    return {str(key): value for key, value in values.items()}


# --- Data -----------------------------------------------------------------------------------


class SpeechDataset(Dataset):
    """Utterances of one or more named sources (manifests, folders, `synth`, Hub names), each
    labelled with what it says (`spoken` where the manifest has it: a character vocabulary
    cannot spell "9:45" as heard). Items outside the duration range or with no text left after
    normalising are left out at load time; an item whose audio cannot be read is reported and
    dropped from its batch. `silence` adds that share of silent or noise-only clips with empty
    transcripts."""

    def __init__(
        self,
        sources: list[dict[str, Any]],
        split: str,
        tokenizer: CharTokenizer,
        data: DataArgs,
        silence: float = 0.0,
        seed: int = 0,
    ) -> None:
        from tiny_audio.data.augment import add_silence
        from tiny_audio.data.sources import load_spec

        usable: list[Utterance] = []
        for entry in sources:
            for utterance in load_spec(entry, split):
                text = tokenizer.normalize(utterance.heard)
                duration = utterance.duration
                if text and (
                    duration is None or data.min_duration_s <= duration <= data.max_duration_s
                ):
                    usable.append(dataclasses.replace(utterance, text=text))
        if not usable:
            names = ", ".join(str(entry["source"]) for entry in sources)
            raise UserError(f"no usable {split} utterances in {names or 'data (none named)'}")
        self.items = [(u.audio, u.text) for u in add_silence(usable, silence, seed)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        from tiny_audio.audio import AudioError, load_audio

        audio, text = self.items[index]
        try:
            return {"audio": load_audio(audio), "text": text}
        except AudioError as error:
            tqdm.write(f"skipping item {index}: {error}")
            return None


class CTCCollator:
    """Waveforms -> (augmented) zero-padded log-mels and concatenated CTC label ids."""

    def __init__(
        self,
        tokenizer: CharTokenizer,
        num_mel_bins: int,
        augment_waveform: Callable[[np.ndarray], np.ndarray] | None = None,
        augment_features: FeatureAugmenter | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.log_mel = LogMel(num_mel_bins)
        self.augment_waveform, self.augment_features = augment_waveform, augment_features

    def features(self, waveform: np.ndarray) -> Tensor:
        """One utterance's (frames, mels) log-mel, augmented as configured."""
        if self.augment_waveform is not None:
            waveform = self.augment_waveform(waveform)
        mel = self.log_mel(torch.from_numpy(waveform))
        if self.augment_features is not None:  # SpecAugment masks (mel, time) at the clip's length
            mel = self.augment_features(mel.T[None], None)[0].T
        return mel

    def __call__(self, items: list[dict[str, Any] | None]) -> dict[str, Any]:
        usable = [item for item in items if item is not None]
        if not usable:
            return {"texts": []}
        with torch.no_grad():
            mels = [self.features(item["audio"]) for item in usable]
        labels = [
            torch.tensor(self.tokenizer.encode(item["text"]), dtype=torch.long) for item in usable
        ]
        return {
            "input_features": torch.nn.utils.rnn.pad_sequence(mels, batch_first=True),
            "feature_lengths": torch.tensor([len(m) for m in mels]),
            "labels": torch.cat(labels),
            "label_lengths": torch.tensor([len(label) for label in labels]),
            "texts": [item["text"] for item in usable],
        }


def batch_stream(
    dataset: Dataset, collator: CTCCollator, args: TrainingArgs, seed: int, samples_seen: int
) -> Any:
    """Endless batches; epoch e is shuffled with seed + e, so a resumed run picks up where the
    saved one stopped after `samples_seen` samples."""
    size = len(dataset)  # type: ignore[arg-type]
    epoch, offset = divmod(samples_seen, size)
    while True:
        generator = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(size, generator=generator).tolist()[offset:]
        batches = [
            order[i : i + args.per_device_train_batch_size]
            for i in range(0, len(order), args.per_device_train_batch_size)
        ]
        loader = DataLoader(
            dataset, batch_sampler=batches, collate_fn=collator, num_workers=args.num_workers
        )
        for batch in loader:
            if batch["texts"]:
                yield batch
        epoch, offset = epoch + 1, 0


# --- Loss, evaluation, NaN guard ------------------------------------------------------------


def ctc_loss(logits: Tensor, lengths: Tensor, batch: dict[str, Any], blank: int) -> Tensor:
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)
    return F.ctc_loss(
        log_probs, batch["labels"], lengths, batch["label_lengths"], blank=blank, zero_infinity=True
    )


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        key: value.to(device) if isinstance(value, Tensor) else value
        for key, value in batch.items()
    }


@torch.no_grad()
def evaluate(
    model: LaCTForCTC, dataset: SpeechDataset, collator: CTCCollator, batch_size: int
) -> dict[str, float]:
    """Validation loss, CER and WER (greedy decoding) on the whole dev set."""
    from tiny_audio.evaluate.metrics import corpus_counts

    model.eval()
    device = model.ctc_head.weight.device
    count = len(dataset)
    pairs: list[tuple[str, str]] = []
    losses: list[float] = []
    for start in range(0, count, batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, count))])
        if not batch["texts"]:
            continue
        batch = to_device(batch, device)
        logits, lengths = model(batch["input_features"], batch["feature_lengths"])
        losses.append(ctc_loss(logits, lengths, batch, model.tokenizer.blank_id).item())
        pairs.extend(zip(batch["texts"], model.decode(logits, lengths), strict=True))
    model.train()
    return {
        "val_loss": sum(losses) / max(len(losses), 1),
        "cer": corpus_counts(pairs, "char").rate,
        "wer": corpus_counts(pairs).rate,
    }


def report_nonfinite(model: LaCTForCTC, batch: dict[str, Any]) -> str:
    """Which module first produced non-finite values on this batch, and which gradients are."""
    from tiny_audio.train.nonfinite import first_nonfinite_module, nonfinite_gradients

    module = first_nonfinite_module(model, batch["input_features"], batch["feature_lengths"])
    gradients = nonfinite_gradients(model)
    shown = ", ".join(gradients[:5]) + (
        f" (+{len(gradients) - 5} more)" if len(gradients) > 5 else ""
    )
    return f"first non-finite output: {module or 'none'}; non-finite gradients: {shown or 'none'}"


# --- Checkpoints (the shared, atomic format of checkpoint.py) -----------------------------


def resume(
    checkpoint: Path, model: LaCTForCTC, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(checkpoint / "model.safetensors")))
    saved = ckpt.restore_training_state(checkpoint, optimizer, scheduler)
    tqdm.write(f"resumed from {checkpoint} at step {saved['step']}")
    return saved


# --- The loop -------------------------------------------------------------------------------


def train(cfg: DictConfig) -> Path:
    """Train (or resume) a LaCT model; returns the directory of the best checkpoint."""
    args = TrainingArgs(**_settings(cfg.get("training")))
    data = DataArgs(**_settings(cfg.get("data")))
    if not data.train or not data.dev:
        raise UserError("LaCT training needs data.train (a list of {source: ...}) and data.dev")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    cuda = torch.cuda.is_available()
    device = torch.device(("cuda" if cuda else "cpu") if args.device == "auto" else args.device)
    bf16 = bf16_enabled(args.bf16)

    tokenizer = CharTokenizer()
    # Data first: a corpus not built yet is named before any output or a large model is made.
    train_set = SpeechDataset(
        list(data.train), "train", tokenizer, data, data.augment.get("silence", 0.0), seed
    )
    val_set = SpeechDataset(source_specs(data.dev), "dev", tokenizer, data)
    output_dir = Path(args.output_dir).expanduser()
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / run_folder.RUN_CONFIG)
    if os.environ.get("WANDB_API_KEY"):  # the tiny-audio recipe's tracker; this loop has none
        tqdm.write(
            f"warning: WANDB_API_KEY is set, but a LaCT run logs only to "
            f"{output_dir / run_folder.METRICS_LOG}, not to W&B"
        )
    model_settings = _settings(cfg.model)
    model_settings.pop(FAMILY_KEY, None)
    config = dataclasses.replace(LaCTConfig.from_dict(model_settings), vocab_size=len(tokenizer))
    model = LaCTForCTC(config, tokenizer).to(device)
    tqdm.write(f"LaCT model ({config.mixer} mixer): {model.num_parameters():,} parameters")
    if args.lm_order:
        texts = (text for _, text in train_set.items if text)
        model.lm = CharLM.fit(texts, tokenizer.characters, args.lm_order)
    train_collator = CTCCollator(tokenizer, config.num_mel_bins, *augmenters(data.augment))
    collator = CTCCollator(tokenizer, config.num_mel_bins)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(args.warmup_steps, args.max_steps, args.lr_scheduler)
    )
    state: dict[str, Any] = {"step": 0, "samples_seen": 0, "best_cer": math.inf, "skipped_steps": 0}
    checkpoint_dir = (
        ckpt.checkpoint_to_resume(args.resume_from_checkpoint, output_dir)
        if args.resume_from_checkpoint
        else None
    )
    if checkpoint_dir is not None:
        state.update(resume(checkpoint_dir, model, optimizer, scheduler))

    stream = batch_stream(train_set, train_collator, args, seed, state["samples_seen"])
    metrics_file = (output_dir / run_folder.METRICS_LOG).open("a")

    def log(record: dict[str, Any]) -> None:
        metrics_file.write(json.dumps({"step": state["step"], **record}) + "\n")
        metrics_file.flush()

    saved_step: int | None = None

    def checkpoint(improved: dict[str, float] | None) -> None:
        """Save this step; `improved`: its dev figures when they are the best so far, which
        make this checkpoint best/."""
        nonlocal saved_step
        training_state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            **state,
        }
        saved = ckpt.save_checkpoint(
            output_dir, state["step"], model.save_pretrained, training_state, improved or {}
        )
        if improved:
            run_folder.point_best(output_dir, saved)
        run_folder.prune(output_dir, args.save_total_limit)
        saved_step = state["step"]

    def validate() -> dict[str, float] | None:
        """Logs this step's dev figures; returns them (as a checkpoint records them) when they
        are the best so far."""
        result = evaluate(model, val_set, collator, args.per_device_train_batch_size)
        log(result)
        tqdm.write(
            f"step {state['step']}: val_loss {result['val_loss']:.3f} CER {result['cer']:.3f} WER {result['wer']:.3f}"
        )
        if result["cer"] >= state["best_cer"]:
            return None
        state["best_cer"] = result["cer"]
        return {"dev_cer": result["cer"], "dev_wer": result["wer"], "dev_loss": result["val_loss"]}

    def sample_prediction() -> None:
        item = val_set[0]
        if item is not None:
            predicted = model.transcribe([item["audio"]])[0]
            tqdm.write(
                f"Sample Prediction (step {state['step']})\n  True: {item['text']}\n  Pred: {predicted}"
            )

    model.train()
    started = time.monotonic()
    skipped_in_a_row = 0
    progress = tqdm(total=args.max_steps, initial=state["step"], desc="lact", mininterval=10)
    while state["step"] < args.max_steps:
        if args.max_minutes is not None and time.monotonic() - started > 60 * args.max_minutes:
            tqdm.write(f"time budget of {args.max_minutes} min reached at step {state['step']}")
            break
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(args.gradient_accumulation_steps):
            batch = to_device(next(stream), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits, lengths = model(batch["input_features"], batch["feature_lengths"])
            loss = (
                ctc_loss(logits, lengths, batch, tokenizer.blank_id)
                / args.gradient_accumulation_steps
            )
            loss.backward()
            step_loss += loss.item()
            state["samples_seen"] += len(batch["texts"])
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        if not (math.isfinite(step_loss) and torch.isfinite(grad_norm)):
            # NaN guard: skip the update, say where the non-finite values come from.
            state["skipped_steps"] += 1
            skipped_in_a_row += 1
            where = report_nonfinite(model, batch)
            tqdm.write(f"step {state['step']}: non-finite loss or gradients, step skipped; {where}")
            log({"skipped": True, "where": where})
            if skipped_in_a_row >= args.max_nonfinite_steps:
                raise UserError(
                    f"{skipped_in_a_row} non-finite steps in a row; run `ta debug nan` on a checkpoint"
                )
            continue
        skipped_in_a_row = 0
        optimizer.step()
        scheduler.step()
        state["step"] += 1
        progress.update(1)
        step = state["step"]
        if step % args.logging_steps == 0:
            elapsed = time.monotonic() - started
            log(
                {
                    "loss": step_loss,
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm),
                    "elapsed_s": elapsed,
                }
            )
            progress.set_postfix(loss=f"{step_loss:.3f}")
        if step % args.sample_steps == 0:
            sample_prediction()
        improved = validate() if step % args.eval_steps == 0 else None
        if improved or step % args.save_steps == 0:
            checkpoint(improved)
    progress.close()
    improved = validate() if state["step"] % args.eval_steps else None
    if improved or saved_step != state["step"]:  # saved again, best's would lose its figures
        checkpoint(improved)
    metrics_file.close()
    best = output_dir / run_folder.BEST
    tqdm.write(f"best CER {state['best_cer']:.3f}: {best}")
    return best
