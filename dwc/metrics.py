"""Evaluation metrics without extra dependencies: ROC AUC (rank form, ties averaged) and logloss."""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC; nan when only one class is present."""
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores).ravel().astype(np.float64)
    positives = labels.sum()
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1, scores.size]
    for start, end in zip(boundaries[:-1], boundaries[1:], strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def logloss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64).ravel()
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
