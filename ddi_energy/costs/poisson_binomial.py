"""E[c(N)] of a cost curve c at a Poisson-binomial count N, and its exact gradient.

N = b_1 + ... + b_k counts the active channels of a unit when channel j is on with probability
p_j, independently. Energy and cycles are staircases in N (steps at multiples of the array
width, cliffs where a buffer overflows), so neither c(Σp) nor its local slope says what a
channel is worth; the expectation does, and its derivative is exactly that worth:

    ∂E[c(N)]/∂p_j = E[c(N_-j + 1) - c(N_-j)],   N_-j = N without channel j.

Forward: the PMF of N by the dynamic programme over channels,
P_j(n) = (1 - p_j) P_{j-1}(n) + p_j P_{j-1}(n - 1): k steps, each vectorized over inputs and
units. Backward: the law of N_-j is P deconvolved by channel j; in closed form,

    p_j <= 1/2:  ∂E/∂p_j = 1/(1 - p_j) Σ_d (-r)^d h(d),   r = p_j / (1 - p_j),
                 h(d) = Σ_i P(i) Δc(i + d)
    p_j >  1/2:  ∂E/∂p_j = 1/p_j Σ_d (-r')^d h'(d),       r' = (1 - p_j) / p_j,
                 h'(d) = Σ_i P(i + 1 + d) Δc(i)

with Δc(n) = c(n + 1) - c(n). Each is a polynomial in a ratio of size <= 1 (no error growth),
evaluated for every channel at once by Horner's rule: another k vectorized steps, O(k) memory
per unit. Work is O(k²) per input and unit, as the DP's.

Channel groups (`grouped_expected_cost`): when gate output j switches a group of G channels,
N is a sum of group sizes. With K groups, K - 1 of size G and the last of size r <= G,
N = G·M + r·b_K with M Poisson-binomial over the first K - 1 groups, so

    E[c(N)] = E[c0(M)] + p_K · E[c1(M) - c0(M)],   c0(m) = c(G m),  c1(m) = c(G m + r),

two unit-weight expectations on sub-sampled curves (one, E[c(G·M)] over all K groups, when
r = G): the same DP and closed-form gradient, exact.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def count_pmf(p: Tensor) -> Tensor:
    """(..., k + 1) law of the number of successes of k independent Bernoulli(p) (..., k)."""
    k = p.shape[-1]
    # Two buffers with a zero column in front (P(-1) = 0), written alternately: one op a step.
    a = p.new_zeros((*p.shape[:-1], k + 2))
    a[..., 1] = 1
    b = a.clone()
    for j in range(k):
        torch.lerp(a[..., 1:j + 3], a[..., :j + 2], p[..., j:j + 1], out=b[..., 1:j + 3])
        a, b = b, a
    return a[..., 1:]


def _toeplitz(dc: Tensor) -> Tensor:
    """(G, k + 1, 2k): columns d of h (Δc(i + d)) then of h' (Δc(i - 1 - d)), rows i."""
    k = dc.shape[-1]
    i = torch.arange(k + 1, device=dc.device)[:, None]
    d = torch.arange(k, device=dc.device)[None, :]
    up, down = i + d, i - 1 - d
    zero = dc.new_zeros(())
    return torch.cat([torch.where(up < k, dc[:, up.clamp(max=k - 1)], zero),
                      torch.where(down >= 0, dc[:, down.clamp(min=0)], zero)], -1)  # fmt: skip


def channel_slopes(p: Tensor, pmf: Tensor, curve: Tensor) -> Tensor:
    """(B, G, k) ∂E[c(N)]/∂p_j for p (B, G, k), the PMF of N (B, G, k + 1), curve (G, k + 1)."""
    k = p.shape[-1]
    coeffs = torch.einsum("bgi,gid->dbg", pmf,
                          _toeplitz(curve[:, 1:] - curve[:, :-1])).contiguous()
    big = torch.maximum(p, 1 - p)
    x = -torch.minimum(p, 1 - p) / big  # -r or -r', |x| <= 1
    low, high = coeffs[k - 1, ..., None], coeffs[2 * k - 1, ..., None]
    for d in range(k - 2, -1, -1):
        low = torch.addcmul(coeffs[d, ..., None], low, x)
        high = torch.addcmul(coeffs[k + d, ..., None], high, x)
    return torch.where(p <= 0.5, low, high) / big


class _ExpectedCost(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p: Tensor, curve: Tensor) -> Tensor:
        pmf = count_pmf(p)
        ctx.save_for_backward(p, pmf, curve)
        return (pmf * curve).sum(-1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        p, pmf, curve = ctx.saved_tensors
        if p.shape[-1] == 0:  # no channels: a constant
            return torch.zeros_like(p), None
        return grad[..., None] * channel_slopes(p, pmf, curve), None


def expected_cost(p: Tensor, curve: Tensor) -> Tensor:
    """(B, G) E[c_g(N_g)] for channel probabilities p (B, G, k) and curves c (G, k + 1) (c_g(n):
    the cost of unit g with n active channels), in p's dtype; differentiable in p."""
    return _ExpectedCost.apply(p, curve.to(p.dtype))


def grouped_expected_cost(p: Tensor, curve: Tensor, group: int) -> Tensor:
    """(B, G) E[c_g(N_g)] when gate output j of p (B, G, K) switches channels
    [j·group, (j + 1)·group) of a unit whose cost at n active channels is curve (G, width + 1):
    N_g is a sum of group sizes (the last group smaller when `group` does not divide width)."""
    k, width = p.shape[-1], curve.shape[-1] - 1
    last = width - (k - 1) * group
    counts = torch.arange(k, device=curve.device) * group  # of the first k - 1 groups: G·m
    if last == group:
        return expected_cost(p, curve[:, torch.cat([counts, counts[-1:] + group])])
    c0, c1 = curve[:, counts], curve[:, counts + last]
    rest = p[..., :-1]
    return expected_cost(rest, c0) + p[..., -1] * expected_cost(rest, c1 - c0)
