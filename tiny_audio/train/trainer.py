"""The training loop for tiny-audio models, on one CPU or GPU or several processes (accelerate).

One step: a length-grouped batch (cached encoder output or audio), the masked LM loss on the
transcript, clipped gradients into the projector and/or LoRA. Every `eval_steps` the dev set is
transcribed through the real generate path and scored; every `save_steps` a checkpoint is written
atomically. A run killed at any moment resumes from its last complete checkpoint."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from tiny_audio.data.manifest import content_key
from tiny_audio.data.sources import source_specs
from tiny_audio.errors import UserError
from tiny_audio.extras import install_command
from tiny_audio.train import checkpoint as ckpt
from tiny_audio.train import run_folder
from tiny_audio.train.components import augmenters, bf16_enabled, lr_lambda
from tiny_audio.train.data import (
    Collator,
    EncoderCache,
    LengthGroupedBatches,
    encoder_cache_dir,
    load_examples,
)
from tiny_audio.train.main import FAMILIES

logger = logging.getLogger("tiny_audio")

MODEL_KEYS_NOT_IN_CONFIG = FAMILIES["tiny_audio"].model_keys_of_training
WANDB_MISSING = (
    f"WANDB_API_KEY is set but wandb is not installed: W&B logging is off "
    f"({install_command('wandb')})"
)


def build_model(model_cfg: DictConfig) -> Any:
    from tiny_audio.model import ASRConfig, ASRModel

    container = OmegaConf.to_container(model_cfg, resolve=True)
    assert isinstance(container, dict)
    fields = {str(k): v for k, v in container.items() if k not in MODEL_KEYS_NOT_IN_CONFIG}
    model = ASRModel(ASRConfig(**fields))
    if model_cfg.get("init_from"):
        from tiny_audio.zoo import resolve

        load_trained_weights(model, Path(resolve(model_cfg.init_from)))  # a folder or zoo name
    return model


def load_trained_weights(model: Any, checkpoint: Path) -> None:
    """Start a stage from an earlier stage: copy every trained tensor both share by name."""
    from safetensors.torch import load_file

    weights_file = checkpoint / "model.safetensors"
    if not weights_file.is_file():
        raise UserError(f"model.init_from: {checkpoint} is not a tiny-audio checkpoint")
    weights = load_file(str(weights_file))
    own = model.trained_parameters()
    shared = {name: tensor for name, tensor in weights.items() if name in own}
    if not shared:
        raise UserError(f"model.init_from: {checkpoint} shares no trained weights with this model")
    model.load_state_dict(shared, strict=False)
    logger.info("initialised %d tensors from %s", len(shared), checkpoint)


def set_trainable(model: Any, train_projector: bool, train_lora: bool) -> None:
    for name, param in model.trained_parameters().items():
        param.requires_grad_(train_lora if "lora_" in name else train_projector)
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError("nothing to train: set training.train_projector or model.lora_rank")


def param_groups(model: Any, cfg: DictConfig) -> list[dict[str, Any]]:
    groups = [
        {
            "params": [
                p
                for n, p in model.trained_parameters().items()
                if p.requires_grad and "lora_" not in n
            ],
            "lr": cfg.learning_rate,
        },
        {
            "params": [
                p for n, p in model.trained_parameters().items() if p.requires_grad and "lora_" in n
            ],
            "lr": cfg.lora_learning_rate,
        },
    ]
    return [g for g in groups if g["params"]]


def dev_wer(
    model: Any, dev: list[tuple[Any, Any]], samples: int
) -> tuple[float, list[tuple[str, str]]]:
    from tiny_audio.evaluate.metrics import corpus_counts
    from tiny_audio.normalize import english_normalizer

    normalize = english_normalizer()
    was_training = model.training
    model.eval()
    hypotheses = model.transcribe([wave for _, wave in dev], batch_size=8)
    model.train(was_training)
    references = [u.text for u, _ in dev]
    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses)]
    return corpus_counts(pairs).rate, list(zip(references, hypotheses))[:samples]


def dev_loss(
    model: Any,
    collate: Collator,
    utterances: list[Any],
    autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    batch_size: int = 8,
) -> float:
    """The training objective on the dev clips (teacher-forced, no augmentation), averaged over
    their transcript tokens: it moves every step where the dev WER moves only in whole words.
    `autocast` covers the model alone: features are computed in float32, as in training."""
    from tiny_audio.model.processing import IGNORE_INDEX

    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(utterances), batch_size):
            batch = collate(utterances[start : start + batch_size])
            if batch is None:
                continue
            batch.pop("audio_seconds")
            count = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            with autocast():
                loss = model(**batch)["loss"]
            total += float(loss) * count
            tokens += count
    model.train(was_training)
    return total / tokens if tokens else math.nan


def train(cfg: DictConfig) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from tiny_audio.data.augment import add_silence
    from tiny_audio.data.manifest import decoded

    t = cfg.training
    if t.num_threads:
        torch.set_num_threads(int(t.num_threads))
    # Data first: a corpus not built yet is named before processes meet or the model loads.
    d = cfg.data
    train_set = load_examples(list(d.train), "train", d.min_duration_s, d.max_duration_s)
    if not train_set:
        raise UserError("no training examples: check data.train sources")
    dev_specs = source_specs(d.dev)
    dev = list(decoded(load_examples(dev_specs, "dev", d.min_duration_s, d.max_duration_s)))

    bf16 = bf16_enabled(t.bf16)
    output_dir = Path(t.output_dir)
    trackers = [t.report_to]
    if os.environ.get("WANDB_API_KEY"):
        from accelerate.utils import is_wandb_available

        if is_wandb_available():
            trackers.append("wandb")
        else:  # accelerate would drop it without a word
            logger.warning(WANDB_MISSING)
    accelerator = Accelerator(
        mixed_precision="bf16" if bf16 else "no",
        log_with=trackers,
        project_dir=str(output_dir),
        cpu=not torch.cuda.is_available(),  # lets torchrun on CPUs form a gloo process group
    )
    set_seed(cfg.seed)
    main = accelerator.is_main_process

    model = build_model(cfg.model)
    set_trainable(model, t.train_projector, t.train_lora and cfg.model.lora_rank > 0)
    if t.gradient_checkpointing:
        model.decoder.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )

    train_set = add_silence(
        train_set, d.augment.silence, cfg.seed
    )  # empty transcripts: say nothing
    augment_waveform, augment_features = augmenters(d.augment)
    cache = None
    augmented = augment_waveform is not None or augment_features is not None
    if t.cache_encoder_outputs and not augmented and cfg.model.encoder_lora_rank == 0:
        from tiny_audio.zoo import cache_home

        cache = EncoderCache(
            encoder_cache_dir(
                cache_home(), cfg.model.audio_encoder, cfg.model.encoder_pad_to_window
            ),
            model.encoder.hidden_size,
        )
        with accelerator.main_process_first():
            if main:
                model.to(accelerator.device)
                cache.build(train_set, lambda waves: encode_clips(model, waves))
        cache = EncoderCache(cache.directory, cache.dim)  # re-read: other processes built nothing
        train_set = [u for u in train_set if content_key(u) in cache]
    collator = Collator(model, cache, d.lowercase_labels, augment_waveform, augment_features)
    dev_collator = Collator(model, None, d.lowercase_labels)  # dev clips are not in the cache
    model.config.audio_token_dropout = d.audio_token_dropout

    optimizer = torch.optim.AdamW(param_groups(model, t), weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(t.warmup_steps, t.max_steps, t.lr_scheduler)
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)
    durations = [u.duration or 1.0 for u in train_set]
    batches = LengthGroupedBatches(
        durations,
        t.per_device_train_batch_size,
        cfg.seed,
        t.group_by_length,
        accelerator.process_index,
        accelerator.num_processes,
    )

    start_step, best_wer = 0, math.inf
    output_dir.mkdir(parents=True, exist_ok=True)
    if main:
        run_folder.clean_partial(output_dir)
    resume = (
        ckpt.checkpoint_to_resume(str(t.resume_from_checkpoint), output_dir)
        if t.resume_from_checkpoint
        else None
    )
    if resume:
        load_trained_weights(unwrapped, resume)
        state = ckpt.restore_training_state(resume, optimizer, scheduler)
        start_step, best_wer = int(state["step"]), float(state["best_wer"])
        logger.info("resumed from %s at step %d", resume, start_step)

    if main:
        OmegaConf.save(cfg, output_dir / run_folder.RUN_CONFIG)
        accelerator.init_trackers(cfg.experiment, config=flat_config(cfg))
        logger.info(
            "training %s: %d examples, %s trainable parameters, %s, %d process(es)",
            cfg.experiment,
            len(train_set),
            f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}",
            "cached encoder outputs" if cache else "live encoder",
            accelerator.num_processes,
        )

    accumulation = t.gradient_accumulation_steps
    model.train()
    progress = tqdm(
        range(start_step, t.max_steps),
        initial=start_step,
        total=t.max_steps,
        disable=not main,
        desc=cfg.experiment,
    )
    window = fresh_window()
    output: dict[str, Any] = {}  # stays empty for a step whose clips were all unreadable
    for step in progress:
        for micro in range(accumulation):
            batch = collator([train_set[i] for i in batches[step * accumulation + micro]])
            if batch is None:
                continue
            window["audio_seconds"] += batch.pop("audio_seconds")
            window["tokens"] += int(batch["attention_mask"].sum())
            with accelerator.autocast():
                output = model(**batch)
            accelerator.backward(output["loss"] / accumulation)
            window["loss"] += float(output["loss"].detach()) / accumulation
        grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        window["steps"] += 1
        done = step + 1

        if done % t.logging_steps == 0 or done == t.max_steps:
            elapsed = time.perf_counter() - window["started"]
            logs = {
                "loss": window["loss"] / window["steps"],
                "grad_norm": grad_norm,
                "lr": scheduler.get_last_lr()[0],
                "audio_seconds_per_second": window["audio_seconds"] / elapsed,
                "tokens_per_second": window["tokens"] / elapsed,
            }
            if "ctc_loss" in output:
                logs["ctc_loss"] = float(output["ctc_loss"].detach())
            if "aux_loss" in output:  # mixture-of-experts projectors: the router's own losses too
                logs["aux_loss"] = float(output["aux_loss"].detach())
                routing = getattr(unwrapped.projector, "last_routing", None) or {}
                logs.update(
                    {f"router_{k}": float(v) for k, v in routing.items() if k.endswith("_loss")}
                )
            accelerator.log(logs, step=done)
            progress.set_postfix(
                loss=f"{logs['loss']:.3f}",
                grad=f"{grad_norm:.2f}",
                lr=f"{logs['lr']:.1e}",
                audio_x=f"{logs['audio_seconds_per_second']:.1f}",
            )
            window = fresh_window()

        evaluate_now = dev and (done % t.eval_steps == 0 or done == t.max_steps)
        save_now = done % t.save_steps == 0 or done == t.max_steps
        metrics: dict[str, float] = {}
        if evaluate_now and main:
            wer, samples = dev_wer(unwrapped, dev, t.sample_predictions)
            loss = dev_loss(
                unwrapped, dev_collator, [utterance for utterance, _ in dev], accelerator.autocast
            )
            metrics |= {"dev_wer": wer, "dev_loss": loss}
            accelerator.log({"dev_wer": wer, "dev_loss": loss}, step=done)
            for reference, prediction in samples:
                progress.write(f"  ref: {reference}\n  hyp: {prediction}")
            progress.write(f"step {done}: dev WER {100 * wer:.1f}%, dev loss {loss:.3f}")
        if save_now:
            accelerator.wait_for_everyone()
            if main:
                wer = metrics.get("dev_wer", math.inf)
                improved = wer < best_wer or not dev or not (output_dir / run_folder.BEST).exists()
                best_wer = min(best_wer, wer)
                state = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "best_wer": best_wer,
                }
                saved = ckpt.save_checkpoint(
                    output_dir, done, unwrapped.save_pretrained, state, metrics
                )
                if improved:
                    run_folder.point_best(output_dir, saved)
                run_folder.prune(output_dir, t.save_total_limit)
            accelerator.wait_for_everyone()

    accelerator.end_training()
    return output_dir / run_folder.BEST


def fresh_window() -> dict[str, float]:
    """Running sums between two log lines."""
    return {
        "loss": 0.0,
        "audio_seconds": 0.0,
        "tokens": 0,
        "steps": 0,
        "started": time.perf_counter(),
    }


def encode_clips(model: Any, waves: list[Any]) -> list[Any]:
    features, lengths = model.processor.features(waves)
    with torch.no_grad():
        hidden, mask = model.encode(features, lengths)
    return [h[: int(n)].float().cpu().numpy() for h, n in zip(hidden, mask.sum(dim=1))]


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat[prefix.rstrip(".")] = (
                node if isinstance(node, (int, float, str, bool)) else str(node)
            )

    walk("", OmegaConf.to_container(cfg, resolve=True))
    return flat
