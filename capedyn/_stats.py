"""Small statistics shared by the running coupling and the frontier line."""

from __future__ import annotations

import numpy as np

from ._errors import CapedynError, InputError


def ols_line(x: np.ndarray, y: np.ndarray, *, degenerate: str,
             error: type[CapedynError] = InputError) -> tuple[float, float, float]:
    """Slope, intercept and R² of the least-squares line y = slope·x + intercept, from
    centred sums (well conditioned for x = log10 N ≈ 8–11). Raises ``error(degenerate)`` when
    every x is the same (the slope is undefined). A constant y has R² 1 for an exact fit and 0
    otherwise (scikit-learn's finite convention)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    if sxx <= 1e-12 * max(1.0, float(np.abs(x).max()) ** 2):
        raise error(degenerate)
    slope = float(np.sum((x - xm) * (y - ym))) / sxx
    intercept = float(ym - slope * xm)
    ss_tot = float(np.sum((y - ym) ** 2))
    ss_res = float(np.sum((y - (slope * x + intercept)) ** 2))
    r2 = (1.0 if ss_res <= 1e-24 else 0.0) if ss_tot == 0.0 else 1.0 - ss_res / ss_tot
    return slope, intercept, r2
