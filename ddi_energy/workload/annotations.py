"""Gate annotations: which gates control a conv/linear module, written by the models and read
by the layer walker.

They live below the models so that a plain backbone can mark its gated layers without knowing
the gated networks, and the walker can read them without knowing the models. A module that a
gate controls carries `ddi_gate = (layer_gate, channel_gate, channel_axis)`; a module without
the attribute is ungated.
"""

from __future__ import annotations

from torch import nn

from ddi_energy.workload.shapes import ChannelAxis

GATE_ATTR = "ddi_gate"
GateTriple = tuple[str, str, ChannelAxis]


def set_gate(
    module: nn.Module, layer_gate: str, channel_gate: str, channel_axis: ChannelAxis
) -> None:
    """Mark `module` as controlled by the named gates (see module docstring)."""
    if channel_axis not in ("in", "out", "both"):
        raise ValueError(f"channel_axis must be 'in', 'out' or 'both', not {channel_axis!r}")
    if channel_axis == "both" and module.in_channels != module.out_channels:
        raise ValueError(f"one mask gates both axes: in_channels ({module.in_channels}) must "
                         f"equal out_channels ({module.out_channels})")  # fmt: skip
    setattr(module, GATE_ATTR, (layer_gate, channel_gate, channel_axis))


def get_gate(module: nn.Module) -> GateTriple | None:
    """The module's gate triple, or None if it is ungated."""
    return getattr(module, GATE_ATTR, None)
