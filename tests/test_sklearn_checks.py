"""scikit-learn's own estimator checks (parametrize_with_checks) on every unsupervised coder,
with small settings so each check fits in a fraction of a second.

Expected failures: none today. (shrewd/shred are left out: they need labels and a label
hierarchy in fit, which the generic checks cannot give.)
"""
from __future__ import annotations

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from hkd_core.models import make_model

ESTIMATORS = [
    make_model("hkm", K=2, D=2),
    make_model("random", K=2, D=2),
    make_model("rq", K=2, D=2),
    make_model("hkd-cuttree", K=2, D=2),
    make_model("hkd", K=2, D=2, epochs=1, hidden=(8,), n_kmeans_exemplars=10, n_random_exemplars=10,
               perplexities=(5.0,), batch_size=16),
    make_model("dccl", K=2, D=2, epochs=1),
    make_model("kd", K=2, D=2, epochs=1),
    make_model("rqvae", K=2, D=2, epochs=1),
    make_model("hcrl", K=2, levels=3, epochs=1),
]
EXPECTED_FAILED_CHECKS: dict = {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(est.model_name, {}))
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)
