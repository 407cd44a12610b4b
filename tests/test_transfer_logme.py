"""LogME against the evidence computed directly, and its maximum against a brute-force grid search."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from taskmix.transfer.logme import Spectrum, evidence, logme, maximise


def direct_evidence(features: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log N(y; 0, F Fᵀ/α + I/β) / n: the marginal likelihood of y with w integrated out, no SVD."""
    n = len(y)
    cov = features @ features.T / alpha + np.eye(n) / beta
    return float(multivariate_normal(np.zeros(n), cov).logpdf(y)) / n


def problem(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dim))
    return features, features @ rng.normal(size=dim) + 0.5 * rng.normal(size=n)


@pytest.mark.parametrize("n, dim", [(30, 5), (8, 12)])  # more rows than features, and fewer
@pytest.mark.parametrize("alpha, beta", [(0.5, 2.0), (3.0, 0.1), (1.0, 1.0)])
def test_closed_form_equals_the_gaussian_marginal_likelihood(n: int, dim: int, alpha: float, beta: float) -> None:
    features, y = problem(n, dim)
    assert evidence(Spectrum.of(features), y, alpha, beta) == pytest.approx(
        direct_evidence(features, y, alpha, beta), abs=1e-9)


@pytest.mark.parametrize("n, dim", [(30, 5), (8, 12), (40, 3)])
def test_fixed_point_reaches_the_grid_maximum(n: int, dim: int) -> None:
    features, y = problem(n, dim, seed=n)
    spectrum = Spectrum.of(features)
    value, alpha, beta = maximise(spectrum, y)
    grid = np.logspace(-3, 3, 241)  # the closed form is checked against the direct one above; it is fast
    brute = max(evidence(spectrum, y, a, b) for a in grid for b in grid)
    assert value >= brute - 1e-9  # no grid point beats the fixed point
    assert value - brute < 1e-3  # and the grid's best comes close to it
    assert value == pytest.approx(direct_evidence(features, y, alpha, beta), abs=1e-9)


def test_classification_averages_one_hot_columns_of_present_classes() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(24, 4))
    labels = np.array([0, 2] * 12)  # class 1 never occurs: it gets no column
    spectrum = Spectrum.of(features)
    columns = [maximise(spectrum, (labels == k).astype(float))[0] for k in (0, 2)]
    assert logme(features, labels) == pytest.approx(np.mean(columns))


def test_informative_features_score_higher_and_regression_ignores_scale() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    informative = np.c_[labels + 0.1 * rng.normal(size=200), rng.normal(size=(200, 3))]
    noise = rng.normal(size=(200, 4))
    assert logme(informative, labels) > logme(noise, labels)
    values = informative[:, 0] + 0.3 * rng.normal(size=200)
    assert logme(informative, values, regression=True) == pytest.approx(
        logme(informative, 100 * values + 7, regression=True))


def test_mismatched_rows_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 feature rows but 2 labels"):
        logme(np.ones((3, 2)), np.array([0, 1]))
