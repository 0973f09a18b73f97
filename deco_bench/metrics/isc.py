"""Inception Score with ADM's convention (pure maths).

ADM evaluator.py: softmax of the pool feature times the logits matrix WITHOUT its bias (torch-fidelity's
`logits_unbiased`), consecutive splits of 5,000 images in file order (no shuffle), IS = mean over splits of
exp(E_x KL(p(y|x) || p(y))).
"""

from __future__ import annotations

import numpy as np
import torch

ADM_SPLIT_SIZE = 5000  # ADM evaluator.py compute_inception_score(split_size=5000)


def inception_score(logits: np.ndarray, split_size: int = ADM_SPLIT_SIZE) -> float:
    """IS of (n, classes) unnormalised logits, in float64 (log_softmax, so no log(0))."""
    x = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"logits must be (n > 0, classes), got {tuple(x.shape)}")
    log_p = x.log_softmax(dim=1)
    scores = []
    for start in range(0, x.shape[0], split_size):
        lp = log_p[start:start + split_size]
        p = lp.exp()
        log_q = torch.logsumexp(lp, dim=0) - np.log(lp.shape[0])  # log of the split's marginal p(y)
        kl = (p * (lp - log_q)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores))
