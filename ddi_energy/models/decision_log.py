"""The decisions of an eval forward, recorded per unit and assembled into `Decisions` once.

At batch 1 a unit's convolutions take a few hundred µs and every PyTorch operator costs
several µs whatever its size, so filling the (B, U) matrices of `Decisions` in place (about
six indexed writes per unit) was a measurable share of a gated forward. A unit now only keeps
the tensors its gates computed anyway; `decisions()` builds the matrices at the end, or at an
exit where a budget prices what has run so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ddi_energy.models.dynamic import Decisions


@dataclass
class UnitRecord:
    """What one unit decided, over the rows of the batch that reached it."""

    alive: Tensor | None  # rows of the batch that reached the unit; None: every row
    executed: Tensor | None  # (len(alive),) bool, the layer gate's decision; None: all ran
    run: Tensor | None  # indices into `alive` of the rows that ran; None: all of them
    mask: Tensor | None  # (rows that ran, k) channels kept; None: every channel


class DecisionLog:
    """Per-unit records of an eval forward plus its exit counters (updated in place)."""

    def __init__(self, batch: int, widths: list[int], layer_gated: bool, channel_gated: bool,
                 exits: int, device: torch.device) -> None:  # fmt: skip
        self.batch, self.widths, self.device = batch, widths, device
        self.layer_gated, self.channel_gated = layer_gated, channel_gated
        self.units: list[UnitRecord] = []
        self.exits_run = torch.zeros(batch, dtype=torch.long, device=device)
        self.exit_index = torch.full((batch,), exits, dtype=torch.long, device=device)

    def record(self, alive: Tensor | None, executed: Tensor | None, run: Tensor | None,
               mask: Tensor | None) -> None:  # fmt: skip
        self.units.append(UnitRecord(alive, executed, run, mask))

    def _channels(self, rec: UnitRecord, k: int, fill: dict) -> Tensor:
        """(B, k) channels that ran in the unit of record `rec`."""
        rows = self.batch if rec.alive is None else rec.alive.numel()
        if rec.run is None:
            local = rec.mask if rec.mask is not None else self._fill(fill, rows, k, True)
        elif rec.run.numel() == 0:
            local = self._fill(fill, rows, k, False)
        else:
            local = torch.zeros((rows, k), dtype=torch.bool, device=self.device)
            local[rec.run] = True if rec.mask is None else rec.mask
        if rec.alive is None:
            return local
        full = torch.zeros((self.batch, k), dtype=torch.bool, device=self.device)
        full[rec.alive] = local
        return full

    def _fill(self, fill: dict, rows: int, k: int, value: bool) -> Tensor:
        """A (rows, k) tensor of `value`, one per shape and value: units whose channels all
        ran (or none did) share it; `Decisions` are read, never written in place."""
        key = (rows, k, value)
        if key not in fill:
            fill[key] = torch.full((rows, k), value, dtype=torch.bool, device=self.device)
        return fill[key]

    def decisions(self) -> Decisions:
        """The decisions so far (units not reached yet: nothing reached, nothing ran)."""
        true = torch.ones(self.batch, dtype=torch.bool, device=self.device)
        false = torch.zeros_like(true)
        reached, executed, channels, fill = [], [], [], {}
        for u, k in enumerate(self.widths):
            if u >= len(self.units):
                reached.append(false)
                executed.append(false)
                channels.append(self._fill(fill, self.batch, k, False))
                continue
            rec = self.units[u]
            reached.append(true if rec.alive is None else false.index_fill(0, rec.alive, True))
            if rec.executed is None:  # no layer gate: every row that reached the unit ran it
                executed.append(reached[-1])
            else:
                executed.append(rec.executed if rec.alive is None else
                                false.index_put((rec.alive,), rec.executed))  # fmt: skip
            channels.append(self._channels(rec, k, fill))
        reached_m, executed_m = torch.stack(reached, 1), torch.stack(executed, 1)
        if not self.channel_gated:
            gate_ran = torch.zeros_like(reached_m)
        else:  # a CNN gate runs where its unit runs, a recurrent one wherever it is reached
            gate_ran = (executed_m if self.layer_gated else reached_m).clone()
        return Decisions(reached_m, executed_m, channels, gate_ran, self.exits_run.clone(),
                         self.exit_index.clone())  # fmt: skip
