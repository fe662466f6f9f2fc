"""What a dynamic network's parts cost at full execution: per unit, its gates' overhead as a share
of the unit they gate (the paper quotes ~0.04 % for the LSTM layer gate, ~12.5 % for the CNN
channel gate of a residual block), exits, and network totals."""

from __future__ import annotations

import pandas as pd
import torch

from ddi_energy.costs.cost_model import CostModel
from ddi_energy.models.dynamic import group_sizes


def unit_report(costs: CostModel) -> pd.DataFrame:
    """One row per unit: the unit's cost and each gate's cost, absolute and in % of the unit."""
    units = torch.arange(len(costs.widths))
    body = costs.curve[units, costs.widths] + costs.always  # (U, M), all channels on
    rows = []
    for u, unit in enumerate(costs.structure.units):
        sizes = group_sizes(unit.width, unit.group)
        row: dict[str, object] = {"unit": unit.name, "channels": unit.width,
                                  "groups": "+".join(map(str, sizes)) if unit.group > 1
                                  else str(len(sizes))}  # fmt: skip
        for m, metric in enumerate(costs.metrics):
            unit_cost = float(body[u, m])
            row[metric] = unit_cost
            for gate, tensor in (("layer_gate", costs.layer_gate), ("channel_gate",
                                                                    costs.channel_gate)):
                row[f"{gate}_{metric}"] = float(tensor[u, m])
                row[f"{gate}_{metric}_%"] = 100 * float(tensor[u, m]) / unit_cost
        rows.append(row)
    return pd.DataFrame(rows)


def totals_report(costs: CostModel) -> pd.DataFrame:
    """Network totals at full execution: backbone, gates, exits, and the gated network."""
    parts = {
        "backbone (plain network)": costs.backbone_full(),
        "layer gates": costs.layer_gate.sum(0),
        "channel gates": costs.channel_gate.sum(0),
        "exit branches": costs.exits.sum(0),
        "gated network, all on": costs.full(),
    }
    frame = pd.DataFrame({k: v.numpy() for k, v in parts.items()}, index=list(costs.metrics)).T
    backbone = frame.loc["backbone (plain network)"]
    for metric in costs.metrics:
        frame[f"{metric}_%"] = 100 * frame[metric] / backbone[metric]
    return frame
