"""SRAM energy per access from capacity: the fit and its published points."""

from __future__ import annotations

import numpy as np
import pytest

from ddi_energy.hardware.sram_energy import (
    CAPACITY_EXPONENT,
    HOROWITZ_1KB_64BIT_PJ,
    HOROWITZ_POINTS_64BIT,
    SramRef,
    sram_word_pj,
)


def test_constants_are_the_least_squares_fit_of_the_published_points():
    kb, pj = zip(*HOROWITZ_POINTS_64BIT.items(), strict=True)
    slope, intercept = np.polyfit(np.log(kb), np.log(pj), 1)
    assert round(slope, 3) == CAPACITY_EXPONENT
    assert round(float(np.exp(intercept)), 2) == HOROWITZ_1KB_64BIT_PJ


@pytest.mark.parametrize("kb, pj", sorted(HOROWITZ_POINTS_64BIT.items()))
def test_model_reproduces_horowitz(kb, pj):
    assert sram_word_pj(kb, 64) == pytest.approx(pj, rel=0.022)


def test_bigger_buffers_cost_more_per_access():
    small, large = sram_word_pj(8, 8), sram_word_pj(512, 8)
    assert large / small >= 3  # the bar; the fit gives 64^0.473 = 7.1
    assert large / small == pytest.approx(64**CAPACITY_EXPONENT, rel=1e-3)


def test_word_width_and_anchor():
    # Han et al. (NIPS 2015): a 32-bit SRAM read costs 5 pJ (Horowitz's 8 kB row, halved).
    assert sram_word_pj(8, 32) == pytest.approx(5.0, rel=0.02)
    eyeriss = SramRef(kB=108, word_bits=16, pj=1.26)  # ISCA 2016: buffer = 6 x 0.21 pJ MAC
    assert sram_word_pj(108, 16, eyeriss) == 1.26
    assert sram_word_pj(54, 16, eyeriss) == pytest.approx(1.26 * 0.5**0.473, abs=1e-4)
