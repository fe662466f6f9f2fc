"""Start a zoo network from pretrained torchvision-layout weights (the paper fine-tunes the
pretrained torchvision DenseNet-201).

`load_pretrained(model, path_or_state_dict)` renames torchvision's keys to our module names and
loads them into the plain backbone, or into the backbone of a gated network (its gates and exits
keep their fresh initialization). Our names stay as they are, so cost tables and their layer
names do not change. Key map (first matching rule wins; any other key is taken as our own name):

    features.conv0 / features.norm0                  -> conv1 / bn1
    features.denseblock{b}.denselayer{l}.norm1/conv1 -> block{b}.layer{l}.bn1/conv1 (and 2)
      older checkpoints: ...denselayer{l}.norm.1/conv.1 (and .2), same targets
    features.transition{b}.norm/conv                 -> trans{b}.bn/conv
    features.norm5 / classifier                      -> bn / fc
    layer{s}.{i}.downsample.0/1                      -> stage{s}.{i}.shortcut.0/1
    layer{s}.{i}.*                                   -> stage{s}.{i}.*

Weights of another architecture are refused, naming the first key that the model does not have
or whose shape differs, else the first backbone key the weights lack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from ddi_energy.errors import DDIError
from ddi_energy.files import load_torch_file

HEAD = "fc."  # our classifier, in every zoo network

_RULES = [(re.compile(pattern), repl) for pattern, repl in (
    (r"^features\.conv0\.", "conv1."),
    (r"^features\.norm0\.", "bn1."),
    (r"^features\.denseblock(\d+)\.denselayer(\d+)\.norm\.?([12])\.", r"block\1.layer\2.bn\3."),
    (r"^features\.denseblock(\d+)\.denselayer(\d+)\.conv\.?([12])\.", r"block\1.layer\2.conv\3."),
    (r"^features\.transition(\d+)\.norm\.", r"trans\1.bn."),
    (r"^features\.transition(\d+)\.conv\.", r"trans\1.conv."),
    (r"^features\.norm5\.", "bn."),
    (r"^classifier\.", HEAD),
    (r"^layer(\d+)\.(\d+)\.downsample\.", r"stage\1.\2.shortcut."),
    (r"^layer(\d+)\.", r"stage\1."),
)]  # fmt: skip


def our_key(key: str) -> str:
    """The name of torchvision-layout state-dict key `key` in our networks."""
    for pattern, repl in _RULES:
        if pattern.match(key):
            return pattern.sub(repl, key, count=1)
    return key


def _read(source: str | Path | Mapping[str, Tensor]) -> tuple[Mapping[str, Tensor], str]:
    if isinstance(source, Mapping):
        state, where = source, "pretrained state dict"
    else:
        where = str(source)
        state = load_torch_file(source, "PyTorch state dict file")
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise DDIError(f"{where}: not a state dict (a mapping of names to tensors)")
    return state, where


def backbone_keys(model: nn.Module) -> dict[str, Tensor]:
    """The model's state-dict entries that a plain backbone has: all but gates and exits."""
    groups = model.parameter_groups() if hasattr(model, "parameter_groups") else {}
    fresh = {id(p) for group in ("gates", "exits") for p in groups.get(group, [])}
    owners = {name.rsplit(".", 1)[0] for name, p in model.named_parameters() if id(p) in fresh}
    return {k: v for k, v in model.state_dict().items() if k.rsplit(".", 1)[0] not in owners}


def load_pretrained(model: nn.Module, source: str | Path | Mapping[str, Tensor], *,
                    classifier: bool = True) -> nn.Module:  # fmt: skip
    """Load torchvision-layout (or our own) backbone weights from a file or a state dict into
    `model` (a zoo network, plain or gated); returns `model`.

    `classifier=False` keeps the model's own classifier (`fc`), e.g. for another number of
    classes. BN `num_batches_tracked` counters may be absent (older torchvision checkpoints).
    """
    state, where = _read(source)
    arch = getattr(model, "arch", type(model).__name__)
    own = backbone_keys(model)
    mapped: dict[str, Tensor] = {}
    for key, value in state.items():
        ours = our_key(key)
        if not classifier and ours.startswith(HEAD):
            continue
        named = key if ours == key else f"{key} (ours: {ours})"
        if ours not in own:
            raise DDIError(f"{where}: {arch} has no {named}: weights of another architecture?")
        if value.shape != own[ours].shape:
            raise DDIError(f"{where}: {named} has shape {tuple(value.shape)}, {arch}'s "
                           f"{tuple(own[ours].shape)}")  # fmt: skip
        mapped[ours] = value
    missing = [k for k in own if k not in mapped and not k.endswith(".num_batches_tracked")
               and (classifier or not k.startswith(HEAD))]  # fmt: skip
    if missing:
        raise DDIError(f"{where}: no weights for {arch}'s {missing[0]} ({len(missing)} of "
                       f"{len(own)} backbone keys missing): weights of another architecture?")
    model.load_state_dict(mapped, strict=False)
    return model
