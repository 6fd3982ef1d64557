"""Where NaN or infinite values come from: the module that first outputs them and the parameters
or gradients that hold them. The LaCT recipe's NaN guard reports these when it skips a step, and
`ta debug nan` when it inspects a checkpoint."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def _finite(value: Any) -> bool:
    if isinstance(value, Tensor):
        return bool(torch.isfinite(value).all()) if value.is_floating_point() else True
    if isinstance(value, (tuple, list)):
        return all(_finite(item) for item in value)
    return True


def nonfinite_parameters(model: nn.Module) -> list[str]:
    return [
        name for name, parameter in model.named_parameters() if not torch.isfinite(parameter).all()
    ]


def nonfinite_gradients(model: nn.Module) -> list[str]:
    return [
        name
        for name, parameter in model.named_parameters()
        if parameter.grad is not None and not torch.isfinite(parameter.grad).all()
    ]


@torch.no_grad()
def first_nonfinite_module(model: nn.Module, features: Tensor, lengths: Tensor) -> str | None:
    """Name of the first module, in execution order, whose output is not finite (None: all are).
    A module's hook fires when it returns, so the innermost culprit is named first."""
    culprits: list[str] = []

    def hook(name: str) -> Any:
        def check(module: nn.Module, inputs: Any, output: Any) -> None:
            if not culprits and not _finite(output):
                culprits.append(name)

        return check

    handles = [
        module.register_forward_hook(hook(name)) for name, module in model.named_modules() if name
    ]
    try:
        model(features, lengths)
    finally:
        for handle in handles:
            handle.remove()
    return culprits[0] if culprits else None
