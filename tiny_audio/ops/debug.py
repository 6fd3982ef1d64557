"""`ta debug`: health checks for a trained model.

check-mosa / check-moe  router health over real clips: entropy, share per expert, dead experts
analyze-lora            size (norm of B @ A) and effective rank of each LoRA update
gradient-flow           gradient norm per trained module for one batch
check-model             projector output scale against the LLM's own embedding scale
nan                     (LaCT models) where NaN or infinite values first appear

Each prints a table, one `warning:` line per value outside its healthy range, and with
`--json PATH` writes the whole report.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.errors import UserError

if TYPE_CHECKING:
    from tiny_audio.lact.model import LaCTForCTC

console = Console()


@dataclass(frozen=True)
class RoutingTargets:
    """Healthy ranges for a router. Entropy is per frame, divided by log(E): 0 means one expert
    takes every frame (collapse), 1 means the router has not learned to prefer any."""

    entropy: tuple[float, float]
    min_share: float  # as a fraction of the uniform share 1/E


# From the MOSA paper's 4-expert dense setting (one expert often grows into a de facto shared
# expert) and Switch/ST-MoE practice for sparse routers.
ROUTING_TARGETS = {
    "mosa": RoutingTargets(entropy=(0.60, 0.85), min_share=0.4),
    "moe": RoutingTargets(entropy=(0.50, 0.90), min_share=0.4),
}
DEAD_SHARE = 0.1  # an expert below a tenth of its uniform share is effectively unused
LORA_COLLAPSED_RANK = 1.5
GRAD_NORM_RANGE = (1e-6, 100.0)  # below: nothing learns; above: unstable without clipping
SCALE_RATIO_RANGE = (0.5, 2.0)


@click.group()
def debug() -> None:
    """Inspect a trained model: routing, LoRA, gradients, embedding scale, NaN."""


# ---- shared helpers -----------------------------------------------------------------------


def open_model(name: str, projector: str | None = None) -> Any:
    """A saved tiny-audio model (directory or zoo name) in eval mode, optionally of one projector."""
    from tiny_audio.model import ASRModel
    from tiny_audio.recognizer import find_model

    saved = find_model(name)
    if saved.model_type != "tiny_audio":
        raise UserError(f"{name}: not a saved tiny-audio model (a {saved.model_type} model)")
    kind = saved.config.get("projector_type")
    if projector is not None and kind != projector:
        raise UserError(f"{name} has a {kind!r} projector, not {projector!r}")
    return ASRModel.from_pretrained(saved.directory)


def load_clips(dataset: str, split: str, limit: int) -> list[tuple[np.ndarray, str]]:
    from tiny_audio.data.manifest import decoded
    from tiny_audio.data.sources import load_source

    clips = [
        (wave, utterance.text) for utterance, wave in decoded(load_source(dataset, split, limit))
    ]
    if not clips:
        raise UserError(f"{dataset} ({split}) gave no decodable clips")
    return clips


def batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A table that folds long names onto more lines where the terminal is narrow: rows whose
    names share a long prefix must not all be cut to it."""
    table = Table(title=title)
    for column in columns:
        table.add_column(
            column, justify="left" if column == columns[0] else "right", overflow="fold"
        )
    for row in rows:
        table.add_row(
            *(f"{value:.4g}" if isinstance(value, float) else str(value) for value in row)
        )
    console.print(table)


def finish(report: dict[str, Any], json_path: str | None) -> None:
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}")
    if not report["warnings"]:
        click.echo("healthy: every value is inside its expected range")
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")


def normalized_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of probabilities over its last axis, divided by log(E)."""
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum(dim=-1)
    return entropy / math.log(probs.shape[-1])


data_options = [
    click.option(
        "-d", "--dataset", default="synth", show_default=True, help="Any data source name or path."
    ),
    click.option("--split", default="dev", show_default=True),
    click.option(
        "-n", "--max-samples", "limit", default=32, show_default=True, help="Clips to run."
    ),
]
json_option = click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report here."
)


def with_data(command: Any) -> Any:
    for option in reversed(data_options):
        command = option(command)
    return command


# ---- routing ------------------------------------------------------------------------------


def routing_report(kind: str, probs: torch.Tensor, chosen: torch.Tensor | None) -> dict[str, Any]:
    """Router statistics over frames: `probs` (N, E); `chosen` (N, k) experts picked (moe)."""
    targets = ROUTING_TARGETS[kind]
    num_experts = probs.shape[-1]
    mean_prob = probs.mean(dim=0)
    # A dense router's share is its mean weight; a sparse one's is the slots it fills.
    if chosen is None:
        share = mean_prob
    else:
        share = torch.nn.functional.one_hot(chosen, num_experts).float().mean(dim=(0, 1))
    entropy = float(normalized_entropy(probs).mean())
    report: dict[str, Any] = {
        "projector": kind,
        "frames": probs.shape[0],
        "num_experts": num_experts,
        "routing_entropy": entropy,
        "usage_entropy": float(normalized_entropy(share[None].clamp(min=0))[0]),
        "expert_share": share.tolist(),
        "mean_router_prob": mean_prob.tolist(),
        "dead_experts": [e for e in range(num_experts) if share[e] < DEAD_SHARE / num_experts],
        "warnings": [],
    }
    if chosen is not None:
        report["balance_loss"] = float(num_experts * (share * mean_prob).sum())
    low, high = targets.entropy
    if entropy < low:
        report["warnings"].append(
            f"routing entropy {entropy:.2f} < {low}: the router is collapsing onto few experts"
        )
    elif entropy > high:
        report["warnings"].append(
            f"routing entropy {entropy:.2f} > {high}: the router barely prefers any expert yet"
        )
    for e in range(num_experts):
        if e in report["dead_experts"]:
            report["warnings"].append(f"expert {e} is dead: {float(share[e]):.1%} of the routing")
        elif share[e] < targets.min_share / num_experts:
            report["warnings"].append(
                f"expert {e} is starved: {float(share[e]):.1%} of the routing"
            )
    return report


@torch.no_grad()
def collect_routing(
    model: Any, waves: list[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    probs, chosen = [], []
    for batch in batches(waves, 8):
        features, lengths = model.processor.features(batch)
        model.embed_audio(features, lengths)
        probs.append(model.projector.last_routing["probs"].float().cpu())
        if "chosen" in model.projector.last_routing:
            chosen.append(model.projector.last_routing["chosen"].cpu())
    return torch.cat(probs), torch.cat(chosen) if chosen else None


def check_routing(
    kind: str, model_name: str, dataset: str, split: str, limit: int, json_path: str | None
) -> None:
    model = open_model(model_name, projector=kind)
    waves = [wave for wave, _ in load_clips(dataset, split, limit)]
    probs, chosen = collect_routing(model, waves)
    report = routing_report(kind, probs, chosen)
    report.update(model=model_name, dataset=dataset, clips=len(waves))
    rows = [
        [
            e,
            report["expert_share"][e],
            report["mean_router_prob"][e],
            "dead" if e in report["dead_experts"] else "",
        ]
        for e in range(report["num_experts"])
    ]
    print_table(
        f"{kind} routing over {report['frames']} frames", ["expert", "share", "mean prob", ""], rows
    )
    click.echo(
        f"routing entropy {report['routing_entropy']:.3f} (healthy {ROUTING_TARGETS[kind].entropy[0]}-{ROUTING_TARGETS[kind].entropy[1]})"
    )
    click.echo(f"usage entropy {report['usage_entropy']:.3f} (1 = every expert equally used)")
    if "balance_loss" in report:
        click.echo(f"load-balancing loss {report['balance_loss']:.3f} (1 = perfectly balanced)")
    finish(report, json_path)


@debug.command("check-mosa")
@click.argument("model")
@with_data
@json_option
def check_mosa(model: str, dataset: str, split: str, limit: int, json_path: str | None) -> None:
    """Router health of a MOSA (dense mixture of experts) MODEL over real clips."""
    check_routing("mosa", model, dataset, split, limit, json_path)


@debug.command("check-moe")
@click.argument("model")
@with_data
@json_option
def check_moe(model: str, dataset: str, split: str, limit: int, json_path: str | None) -> None:
    """Router health of an MoE (shared + top-k routed experts) MODEL over real clips."""
    check_routing("moe", model, dataset, split, limit, json_path)


# ---- LoRA -----------------------------------------------------------------------------------


def effective_rank(matrix: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values): how many directions carry the update
    (Roy & Vetterli, 2007). 0 for an all-zero matrix."""
    singular = torch.linalg.svdvals(matrix.double())
    total = singular.sum()
    if total == 0:
        return 0.0
    p = singular / total
    return float(torch.exp(-(p * p.clamp(min=1e-30).log()).sum()))


PEFT_WRAPPERS = ".base_model.model."  # PeftModel -> LoraModel -> the wrapped model


def lora_updates(model: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Module name (without PEFT's wrappers: decoder.model.layers.0.self_attn.q_proj) ->
    (scaling * B @ A, the frozen base weight) for every LoRA layer."""
    updates = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            delta = module.scaling["default"] * (b @ a)
            updates[name.replace(PEFT_WRAPPERS, ".")] = (
                delta.detach().float(),
                module.get_base_layer().weight.detach().float(),
            )
    return updates


@debug.command("analyze-lora")
@click.argument("model")
@json_option
def analyze_lora(model: str, json_path: str | None) -> None:
    """Norm and effective rank of each LoRA update (scaling * B @ A) in MODEL."""
    loaded = open_model(model)
    updates = lora_updates(loaded)
    if not updates:
        raise UserError(f"{model} has no LoRA adapters (lora_rank and encoder_lora_rank are 0)")
    modules: list[dict[str, Any]] = []
    for name, (delta, base) in updates.items():
        norm = float(delta.norm())
        modules.append(
            {
                "module": name,
                "norm": norm,
                "relative_norm": norm / max(float(base.norm()), 1e-12),
                "effective_rank": effective_rank(delta),
                "rank": min(delta.shape),
            }
        )
    rank = loaded.config.lora_rank or loaded.config.encoder_lora_rank
    report: dict[str, Any] = {"model": model, "lora_rank": rank, "modules": modules, "warnings": []}
    print_table(
        "LoRA updates",
        ["module", "|BA|", "|BA| / |W|", "effective rank"],
        [[m["module"], m["norm"], m["relative_norm"], m["effective_rank"]] for m in modules],
    )
    untrained = [m["module"] for m in modules if m["norm"] == 0]
    if untrained:
        report["warnings"].append(
            f"{len(untrained)} of {len(modules)} LoRA updates are zero (B still at its init)"
        )
    collapsed = [m["module"] for m in modules if 0 < m["effective_rank"] < LORA_COLLAPSED_RANK]
    if collapsed:
        report["warnings"].append(
            f"{len(collapsed)} LoRA updates use about one direction (effective rank < {LORA_COLLAPSED_RANK}): "
            "a lower rank would do"
        )
    finish(report, json_path)


# ---- gradients ------------------------------------------------------------------------------


def gradient_norms(
    model: Any, clips: list[tuple[np.ndarray, str]]
) -> tuple[float, dict[str, float]]:
    """Loss and per-module gradient norms of the trained parameters for one batch."""
    trained = model.trained_parameters()
    for param in trained.values():
        param.requires_grad_(True)
    model.zero_grad()
    waves, texts = [wave for wave, _ in clips], [text for _, text in clips]
    features, lengths = model.processor.features(waves)
    batch = model.processor.text_inputs(model.audio_token_counts(lengths), texts=texts)
    loss = model(**batch, input_features=features, feature_lengths=lengths)["loss"]
    loss.backward()
    squares: dict[str, float] = {}
    for name, param in trained.items():
        module = name.rsplit(".", 1)[0]
        grad = 0.0 if param.grad is None else float(param.grad.float().pow(2).sum())
        squares[module] = squares.get(module, 0.0) + grad
    return float(loss.detach()), {module: math.sqrt(value) for module, value in squares.items()}


@debug.command("gradient-flow")
@click.argument("model")
@with_data
@json_option
def gradient_flow(model: str, dataset: str, split: str, limit: int, json_path: str | None) -> None:
    """Gradient norm of every trained module of MODEL for one batch (-n clips) of DATASET."""
    loaded = open_model(model)
    loss, norms = gradient_norms(loaded, load_clips(dataset, split, limit))
    total = math.sqrt(sum(norm**2 for norm in norms.values()))
    report: dict[str, Any] = {
        "model": model,
        "dataset": dataset,
        "loss": loss,
        "total_norm": total,
        "modules": norms,
        "warnings": [],
    }
    print_table(
        "gradient norms", ["module", "grad norm"], [[name, norm] for name, norm in norms.items()]
    )
    click.echo(f"loss {loss:.4f}, total gradient norm {total:.4g}")
    low, high = GRAD_NORM_RANGE
    if not math.isfinite(total):
        report["warnings"].append("non-finite gradients")
    elif total > high:
        report["warnings"].append(
            f"total gradient norm {total:.3g} > {high}: expect instability without clipping"
        )
    dead = [name for name, norm in norms.items() if norm < low]
    if dead:
        report["warnings"].append(
            f"no gradient reaches {len(dead)} module(s): {', '.join(dead[:5])}"
        )
    finish(report, json_path)


# ---- embedding scale ------------------------------------------------------------------------


@torch.no_grad()
def projector_rms(model: Any, waves: list[np.ndarray]) -> float:
    """Root mean square of the projector's audio embeddings over real (unpadded) tokens."""
    squares, count = 0.0, 0
    for batch in batches(waves, 8):
        embeds, mask = model.embed_audio(*model.processor.features(batch))
        squares += float(embeds[mask].float().pow(2).sum())
        count += int(mask.sum()) * embeds.shape[-1]
    return math.sqrt(squares / count)


@debug.command("check-model")
@click.argument("model")
@with_data
@json_option
def check_model(model: str, dataset: str, split: str, limit: int, json_path: str | None) -> None:
    """Scale of MODEL's audio embeddings against the LLM's own token embeddings."""
    waves = [wave for wave, _ in load_clips(dataset, split, limit)]  # a missing corpus: at once
    loaded = open_model(model)
    audio = projector_rms(loaded, waves)
    embeddings = loaded.decoder.get_input_embeddings().weight.float()
    text = float(embeddings.pow(2).mean().sqrt())
    ratio = audio / text
    report: dict[str, Any] = {
        "model": model,
        "projector": loaded.config.projector_type,
        "audio_embedding_rms": audio,
        "text_embedding_rms": text,
        "ratio": ratio,
        "output_norm_gain": float(loaded.projector.output_norm.weight.detach().mean()),
        "warnings": [],
    }
    print_table(
        "embedding scale",
        ["", "RMS"],
        [["audio tokens (projector)", audio], ["text tokens (LLM)", text], ["ratio", ratio]],
    )
    low, high = SCALE_RATIO_RANGE
    if not low <= ratio <= high:
        report["warnings"].append(
            f"audio embeddings are {ratio:.2f}x the LLM's text embeddings (healthy {low}-{high}x)"
        )
    finish(report, json_path)


# ---- nan (LaCT) ---------------------------------------------------------------------------


def probe_audio(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """A speech-like test signal when no audio is given: a gliding harmonic tone plus noise."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.5 * time)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.1 * tone + 0.01 * rng.standard_normal(time.size)).astype(np.float32)


def diagnose_nonfinite(model: LaCTForCTC, waveforms: list[np.ndarray]) -> dict[str, Any]:
    from tiny_audio.train.nonfinite import (
        first_nonfinite_module,
        nonfinite_gradients,
        nonfinite_parameters,
    )

    features, lengths = model.features(waveforms)
    report: dict[str, Any] = {
        "nonfinite_parameters": nonfinite_parameters(model),
        "first_nonfinite_output": first_nonfinite_module(model, features, lengths),
    }
    # Gradients of a label-free loss (mean negative log-probability) show the backward side.
    model.zero_grad(set_to_none=True)
    logits, _ = model(features, lengths)
    (-logits.float().log_softmax(-1).mean()).backward()
    report["nonfinite_gradients"] = nonfinite_gradients(model)
    with torch.no_grad():
        x, token_lengths = model.audio_encoder(features, lengths)
        mask = torch.arange(x.shape[1])[None, :] < token_lengths[:, None]
        peaks = []
        for block in model.blocks:
            x = block(x, mask)
            peaks.append(float(x[mask].abs().max()))
    report["block_peak_activation"] = peaks
    return report


@debug.command("nan")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--audio",
    "audio_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Audio to run (default: a synthetic probe).",
)
@json_option
def nan_command(checkpoint: str, audio_files: tuple[str, ...], json_path: str | None) -> None:
    """Locate the layer of a LaCT CHECKPOINT that first produces NaN or infinite values."""
    from tiny_audio.audio import load_audio
    from tiny_audio.lact.model import LaCTForCTC

    model = LaCTForCTC.from_pretrained(checkpoint)
    waveforms = [load_audio(path) for path in audio_files] or [probe_audio()]
    report = diagnose_nonfinite(model, waveforms)
    click.echo(f"non-finite parameters: {', '.join(report['nonfinite_parameters']) or 'none'}")
    click.echo(f"first non-finite output: {report['first_nonfinite_output'] or 'none'}")
    click.echo(f"non-finite gradients: {', '.join(report['nonfinite_gradients']) or 'none'}")
    peaks = ", ".join(f"{peak:.3g}" for peak in report["block_peak_activation"])
    click.echo(f"peak |activation| per block: {peaks}")
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
