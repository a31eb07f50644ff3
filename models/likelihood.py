"""Maximum-likelihood fitting on log-parameters, shared by the buy-till-you-die models
(`models.bgnbd`, `models.pareto_nbd`, `models.gamma_gamma`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator

from features.repeat_buying import check_rfm

# The optimiser works on log-parameters inside these bounds (exp(+-15) ~ 3e-7 .. 3e6): wide
# enough for any unit of time, narrow enough that no intermediate overflows.
LOG_BOUNDS = (-15.0, 15.0)


def minimise_from_starts(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    starts: Iterable[np.ndarray],
    options: Mapping[str, float],
    polish: Callable[[np.ndarray], float] | None = None,
) -> optimize.OptimizeResult:
    """The minimum of `objective` (value and gradient in log-parameters) by L-BFGS-B within
    LOG_BOUNDS, from each of `starts` (parameters, not logs) until one converges, keeping the best.

    When none converges and `polish` (the value alone) is given, a gradient-free Nelder-Mead search
    from the best point is kept if it does better: a stall on a flat ridge between two parameters
    is common in these likelihoods and a gradient method stops on it.
    """
    best = None
    for start in starts:
        result = optimize.minimize(
            objective,
            np.log(start),
            jac=True,
            method="L-BFGS-B",
            bounds=[LOG_BOUNDS] * len(start),
            options=dict(options),
        )
        if best is None or result.fun < best.fun:
            best = result
        if best.success:  # the other starting points are for when this one stalls
            break
    if best is None:
        raise ValueError("no starting point to fit from")
    if not best.success and polish is not None:
        polished = optimize.minimize(
            lambda v: polish(np.clip(v, *LOG_BOUNDS)),
            best.x,
            method="Nelder-Mead",
            options={"maxiter": 4000, "xatol": 1e-9, "fatol": 1e-12},
        )
        if polished.fun <= best.fun:
            polished.x = np.clip(polished.x, *LOG_BOUNDS)
            best = polished
    return best


class MaximumLikelihoodModel(BaseEstimator):
    """The bookkeeping of a model fitted by maximum likelihood, scikit-learn style: each parameter of
    `PARAMETERS` kept as `<name>_`, with `log_likelihood_`, `n_customers_` and `converged_`."""

    PARAMETERS: tuple[str, ...] = ()

    def _keep(self, log_params: np.ndarray, n_customers: int, converged: bool) -> None:
        """Keep the parameters found (logs, as the optimiser works); `log_likelihood_` comes after."""
        for name, value in zip(self.PARAMETERS, np.exp(log_params), strict=True):
            setattr(self, f"{name}_", float(value))
        self.log_likelihood_ = float("nan")
        self.n_customers_ = int(n_customers)
        self.converged_ = bool(converged)

    @classmethod
    def _with_params(cls, values: Mapping[str, float], **settings):
        """A model of the given parameters (e.g. published ones), usable without fitting."""
        if min(values[name] for name in cls.PARAMETERS) <= 0:
            raise ValueError(f"{cls.__name__} parameters must all be > 0, got {dict(values)}")
        model = cls(**settings)
        model._keep(np.log([float(values[name]) for name in cls.PARAMETERS]), 0, True)
        return model

    @property
    def _params(self) -> np.ndarray:
        if not hasattr(self, f"{self.PARAMETERS[0]}_"):
            raise AttributeError(f"this {type(self).__name__} is not fitted yet: call fit() first")
        return np.array([getattr(self, f"{name}_") for name in self.PARAMETERS])

    @property
    def params_(self) -> dict[str, float]:
        """The fitted parameters by name."""
        return dict(zip(self.PARAMETERS, self._params.tolist(), strict=True))


def distinct_rfm_rows(frequency, recency, T, model: str, penalizer: float):  # noqa: N803
    """(x, t_x, T of the distinct customers, how many customers each stands for, customers in all):
    customers with the same (x, t_x, T) share a likelihood term, so a fit runs over distinct rows.
    ValueError for no customer, a negative penalizer, or bad RFM values (`check_rfm`)."""
    x, t_x, age = (values.ravel() for values in check_rfm(frequency, recency, T))
    if len(x) == 0:
        raise ValueError(f"cannot fit {model} on zero customers")
    if penalizer < 0:
        raise ValueError(f"penalizer must be >= 0, got {penalizer}")
    rows, counts = np.unique(np.column_stack([x, t_x, age]), axis=0, return_counts=True)
    x_u, t_x_u, age_u = (np.ascontiguousarray(column) for column in rows.T)
    return (x_u, t_x_u, age_u), counts.astype(float), float(len(x))
