"""SRAM energy per word access that follows the buffer's capacity and word width.

A fixed pJ per SRAM access makes every bigger buffer look free: it cuts DRAM traffic at no cost.
Published figures say otherwise. Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014, keynote, energy table for 45 nm at 0.9 V, one 64-bit read:

    8 kB SRAM: 10 pJ      32 kB: 20 pJ      1 MB: 100 pJ

A least-squares line through (ln kB, ln pJ) of those three points:

    x = ln 8, ln 32, ln 1024 = 2.0794, 3.4657, 6.9315     mean 4.1589
    y = ln 10, ln 20, ln 100 = 2.3026, 2.9957, 4.6052     mean 3.3011
    slope = sum(dx*dy) / sum(dx^2) = 5.9037 / 12.4918 = 0.4726
    e(1 kB) = exp(3.3011 - 0.4726 * 4.1589) = exp(1.3357) = 3.802 pJ

so e64(C) = 3.80 pJ * (C / 1 kB)^0.473: 10.2 / 19.6 / 100.8 pJ at the three points (within 2.1 %
of each), close to the square-root law of wire-dominated arrays (bit- and word-line length grow
as sqrt(capacity)). A word of w bits costs w/64 of a 64-bit access (bit-line energy is per bit;
the same scaling gives Han et al.'s 5 pJ per 32-bit read, NIPS 2015 Fig. 1, from this table).

A config may anchor the law at its own published figure instead (`sram_ref`): the exponent is
kept and the level moved, e.g. Eyeriss's 108 KB global buffer at 6x a 0.21 pJ MAC. No node
scaling is offered: classical scaling rules err by up to 83x between nodes (Stillmaker and Baas,
Integration 2017); give a figure for your node as `sram_ref` instead.

Beyond 1 MB the law is an extrapolation (a monolithic array; banked buffers pay somewhat less).
"""

from __future__ import annotations

from dataclasses import dataclass

# Exponent and 1 kB prefactor of the fit above (rounded: what tables use, so they are stable).
CAPACITY_EXPONENT = 0.473
HOROWITZ_1KB_64BIT_PJ = 3.80
HOROWITZ_POINTS_64BIT = {8: 10.0, 32: 20.0, 1024: 100.0}  # kB -> pJ per 64-bit read, 45 nm
MODEL = (
    "SRAM pJ per word = ref_pj * (capacity_kB / ref_kB)^0.473 * (word_bits / ref_word_bits); "
    "exponent fitted to Horowitz ISSCC 2014 (45 nm, 64-bit read: 8 kB 10 pJ, 32 kB 20 pJ, "
    "1 MB 100 pJ); default ref 1 kB, 64 bits, 3.80 pJ (the fit)"
)


@dataclass(frozen=True)
class SramRef:
    """A published SRAM energy: `pj` per access of `word_bits` from `kB` of storage."""

    kB: float
    word_bits: int
    pj: float


HOROWITZ_45NM = SramRef(kB=1.0, word_bits=64, pj=HOROWITZ_1KB_64BIT_PJ)


def sram_word_pj(capacity_kB: float, word_bits: int, ref: SramRef = HOROWITZ_45NM) -> float:
    """pJ per access of one `word_bits` word from a buffer of `capacity_kB` (rounded to 1e-4)."""
    scale = (capacity_kB / ref.kB) ** CAPACITY_EXPONENT * (word_bits / ref.word_bits)
    return round(ref.pj * scale, 4)
