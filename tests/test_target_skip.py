"""A few-minute training run holds its skip target on the synthetic data (slow: ~5 CPU-minutes).

The recipe: a 300-step backbone, 25 steps of IADI step 1, 300 of IADI step 2 with α's sign
flipped per batch and a cosine learning rate, then `ddi-energy eval` with real skipping.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ddi_energy.training.config import load_config
from ddi_energy.training.evaluate import evaluate, load_run
from ddi_energy.training.loop import train

# The `quick` preset's schedule and α (the defaults) on resnet8.
RECIPE = {"arch": "resnet8", "gating": "mgl2s", "hw": "eyeriss"}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("target") / "pretrain"
    train(load_config(None, {**RECIPE, "pretrain_steps": 300, "gate_steps": 0, "steps": 0,
                             "out": str(out)}), progress=False)  # fmt: skip
    return out


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["flops", "energy"])
def test_target_skip_is_reached_and_harder_inputs_cost_more(backbone: Path, loss: str):
    cfg = load_config(None, {**RECIPE, "loss": loss, "target_skip": 0.5, "init": str(backbone),
                             "pretrain_steps": 0, "out": str(backbone.parent / loss)})  # fmt: skip
    train(cfg, progress=False)
    report = evaluate(*load_run(Path(cfg.out), None), budgets=()).summary
    print(f"\n{loss}: skip {report['skip_ratio']:.3f} flops saved {report['flops_savings']:.3f} "
          f"energy saved {report['energy_savings']:.3f} accuracy {report['accuracy']:.3f} "
          f"by level {[round(r['energy_pj'] / 1e6, 1) for r in report['per_difficulty']]}")
    assert report["skip_ratio"] == pytest.approx(0.5, abs=0.03)
    assert report["flops_savings"] > 0.3 and report["energy_savings"] > 0.2
    by_level = [row["energy_pj"] for row in report["per_difficulty"]]
    assert by_level[0] < by_level[1] <= by_level[-1] * 1.001  # easy inputs cost least
    assert report["accuracy"] > 0.8
