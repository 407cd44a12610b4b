"""LogME (You et al. 2021): the log marginal evidence of labels given fixed features, maximised in closed form.

Each label column y (n values) is modelled as y = F w + noise with prior w ~ N(0, α⁻¹ I) and
noise ~ N(0, β⁻¹ I), F the n × D feature matrix.  The evidence is

    log p(y | F, α, β) = n/2 log β + D/2 log α − n/2 log 2π − β/2 ‖F m − y‖² − α/2 ‖m‖² − 1/2 log |A|

with A = α I + β FᵀF and m = β A⁻¹ Fᵀ y.  α and β are found by the paper's fixed-point
iteration (γ = Σ β σᵢ² / (α + β σᵢ²), α ← γ / ‖m‖², β ← (n − γ) / ‖F m − y‖²), every term
written in the SVD of F once, so an iteration costs O(min(n, D)).  The score is the
maximised evidence divided by n, averaged over label columns (one-hot columns for
classification, the value itself for regression), as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_ITERATIONS = 100
TOLERANCE = 1e-5  # relative change of α and β that ends the iteration


@dataclass(frozen=True)
class Spectrum:
    """What every column's evidence needs of F: squared singular values, left singular vectors, width D."""

    sigma2: np.ndarray
    u: np.ndarray
    width: int

    @classmethod
    def of(cls, features: np.ndarray) -> Spectrum:
        f = np.asarray(features, dtype=np.float64)
        u, sigma, _ = np.linalg.svd(f, full_matrices=False)
        return cls(sigma**2, u, f.shape[1])


def evidence(spectrum: Spectrum, y: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | F, α, β) / n, in the SVD basis (directions of F with σ = 0 add only log α terms)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    z = spectrum.u.T @ y
    s2 = spectrum.sigma2
    denom = alpha + beta * s2
    residual = float(np.sum((alpha * z / denom) ** 2) + max(float(y @ y - z @ z), 0.0))
    m_norm2 = float(np.sum(beta**2 * s2 * z**2 / denom**2))
    log_det = float(np.sum(np.log(denom))) + (spectrum.width - len(s2)) * math.log(alpha)
    value = (n * math.log(beta) + spectrum.width * math.log(alpha) - n * math.log(2 * math.pi)
             - beta * residual - alpha * m_norm2 - log_det) / 2
    return value / n


def maximise(spectrum: Spectrum, y: np.ndarray) -> tuple[float, float, float]:
    """(evidence / n, α, β) at the fixed point of the paper's iteration, started at α = β = 1."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    z = spectrum.u.T @ y
    s2 = spectrum.sigma2
    outside = max(float(y @ y - z @ z), 0.0)  # the part of y that F cannot reach
    alpha, beta = 1.0, 1.0
    for _ in range(MAX_ITERATIONS):
        denom = alpha + beta * s2
        gamma = float(np.sum(beta * s2 / denom))
        m_norm2 = float(np.sum(beta**2 * s2 * z**2 / denom**2))
        residual = float(np.sum((alpha * z / denom) ** 2)) + outside
        new_alpha = gamma / max(m_norm2, 1e-12)
        new_beta = (n - gamma) / max(residual, 1e-12)
        done = abs(new_alpha - alpha) / alpha < TOLERANCE and abs(new_beta - beta) / beta < TOLERANCE
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return evidence(spectrum, y, alpha, beta), alpha, beta


def logme(features: np.ndarray, labels: np.ndarray, regression: bool = False) -> float:
    """LogME of features for labels: class indices (one-hot columns averaged) or, with `regression`, values.

    Only classes present among the labels get a column: an all-zero column has unbounded
    evidence (β → ∞).  Regression targets are standardised first, so the score does not
    depend on the label's scale.  Both are our choices; the paper is silent on them.
    """
    labels = np.asarray(labels)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    spectrum = Spectrum.of(features)
    if regression:
        y = labels.astype(np.float64)
        y = (y - y.mean()) / (y.std() or 1.0)
        columns = [y]
    else:
        columns = [(labels == k).astype(np.float64) for k in np.unique(labels)]
    return float(np.mean([maximise(spectrum, y)[0] for y in columns]))
