"""Laws whose log prediction is a log-sum-exp of terms linear in theta, each term with one log
coefficient: L = sum_k c_k * prod_j x_j^(e_kj), so Chinchilla's L(N,D) and every power law with
or without an irreducible term. Their value, Jacobian and exact Hessian follow from the terms'
linear maps alone (the softmax of the terms weighs them), and their coefficients are linear for
variable projection."""

from __future__ import annotations

import numpy as np

from .base import Law, Loss


class TermsLaw(Law):
    @property
    def coefficients(self) -> tuple[int, ...]:
        """Per term, the index of its log coefficient in theta."""
        raise NotImplementedError

    def terms(self, X: tuple[np.ndarray, ...]) -> np.ndarray:
        """The terms' linear maps (K, n, P): term k at point i is terms[k, i] @ theta."""
        raise NotImplementedError

    def _softmax(self, theta, X):
        """The log prediction (..., n) and the terms' softmax weights (..., K, n)."""
        t = np.einsum("knp,...p->...kn", self.terms(X), np.asarray(theta, dtype=float))
        top = t.max(axis=-2, keepdims=True)
        w = np.exp(t - top)
        total = w.sum(axis=-2, keepdims=True)
        return (top + np.log(total))[..., 0, :], w / total

    def fitted_value(self, theta, *X):
        return self._softmax(theta, X)[0]

    def predict(self, theta, *X):
        return np.exp(self.fitted_value(theta, *X))

    def jacobian(self, theta, *X):
        _, s = self._softmax(theta, X)
        return np.einsum("...kn,knp->...np", s, self.terms(X))

    def hessian(self, theta, *X):
        """sum_k s_k T_k T_k' - J J' (the terms are linear in theta)."""
        _, s = self._softmax(theta, X)
        T = self.terms(X)
        J = np.einsum("...kn,knp->...np", s, T)
        return np.einsum("...kn,knp,knq->...npq", s, T, T) - J[..., :, None] * J[..., None, :]

    def objective_derivatives(self, theta, X, observed, counts, loss: Loss):
        """For each row of theta (B, P) and of counts (B, n) (how often each point counts): the
        objective (B,), gradient (B, P), exact Hessian (B, P, P) and Gauss-Newton diagonal (B, P),
        without forming a Hessian per point: sum_n c [h'' J J' + h' (M - J J')], M = sum_k s_k T_k T_k'."""
        log_pred, s = self._softmax(theta, X)
        T = self.terms(X)
        r = log_pred - observed
        J = np.einsum("bkn,knp->bnp", s, T)
        slope = counts * loss.slope(r)
        g = np.einsum("bnp,bn->bp", J, slope)
        K, n, P = T.shape
        TT = np.einsum("knp,knq->knpq", T, T).reshape(K, n, P * P)
        M = np.einsum("bkn,knx->bx", s * slope[:, None, :], TT).reshape(-1, P, P)
        H = np.einsum("bnp,bn,bnq->bpq", J, counts * loss.curvature(r) - slope, J) + M
        scale = np.einsum("bnp,bn->bp", J**2, counts)
        return (counts * loss.value(r)).sum(-1), g, H, scale

    @property
    def nonlinear(self) -> list[int]:
        return [j for j in range(len(self.params)) if j not in self.coefficients]

    def design(self, cells, X):
        """Term k's basis: exp of its nonlinear part (its coefficient is the linear unknown)."""
        T = self.terms(X)[:, :, self.nonlinear]  # (K, n, Q)
        basis = np.exp(np.einsum("knq,cq->cnk", T, cells))
        return np.zeros(basis.shape[:2]), basis

    def assemble(self, coef, cells):
        theta = np.empty((len(coef), len(self.params)))
        theta[:, list(self.coefficients)] = np.log(np.maximum(coef, 1e-12))
        theta[:, self.nonlinear] = cells
        return theta

    def solve_exactly(self, X, observed, loss):
        """One term under least squares: the log prediction is linear in theta, so solved exactly."""
        if len(self.coefficients) != 1 or loss.delta is not None:
            return None
        return np.linalg.lstsq(self.terms(X)[0], observed, rcond=None)[0]
