"""The paper's settings per dataset (§3.2-3.4), the defaults of ``train`` and of the app.

They apply to the HKD family (hkd and its ablations); baselines get only the generic K, D, seed.
Where the paper is silent (exemplar counts for the synthetic data, decay lambda and w0,
temperature schedule, epochs) the values are ours, chosen on the synthetic training split and
stated here.
"""
from __future__ import annotations

# the coder `train` and the app use when none is named
RECOMMENDED_MODEL = "hkd"

HKD_FAMILY = ("hkd", "hkd-no-recon", "hkd-no-kl", "hkd-no-decay")

PAPER_SETTINGS: dict[str, dict] = {
    # §3.2: hidden 20, K = D = 16, alpha 0.1, two KL terms of weight 1, perplexities 5 and 11
    "synthetic": dict(K=16, D=16, hidden=(20,), alpha=0.1, beta=1.0, perplexities=(5.0, 11.0),
                      kl_weights=(1.0, 1.0), n_kmeans_exemplars=100, n_random_exemplars=100,
                      metric="euclidean"),
    # §3.3: 10-d Poincare input, K = D = 16, 200 k-means + 100 random exemplars, alpha = beta = 1,
    # one KL term of perplexity 10; p_{j|i} on Poincare distances
    "mammals": dict(K=16, D=16, alpha=1.0, beta=1.0, perplexities=(10.0,),
                    n_kmeans_exemplars=200, n_random_exemplars=100, metric="poincare"),
    # §3.4: hidden 100, K = D = 16, alpha 0.01, one KL of weight 1 and perplexity 15 on the
    # centres and each point's nearest neighbours
    "cifar100": dict(K=16, D=16, hidden=(100,), alpha=0.01, beta=1.0, perplexities=(15.0,),
                     n_kmeans_exemplars=200, n_random_exemplars=0, n_neighbour_exemplars=20,
                     metric="euclidean"),
}

# training choices the paper does not state, tuned per dataset (see the closing notes)
TRAINING_SETTINGS: dict[str, dict] = {
    # decay lambda 0.1 keeps digits 1..8 neighbour-preserving (0.3 let reconstruction split
    # clusters from digit 6 on); lr 1e-3 reaches in 200 epochs what 1e-4 needs ~10x more for
    "synthetic": dict(epochs=200, lr=1e-3, batch_size=128, optimizer="rmsprop", decay=0.1),
    # decay 0.3: measured on the shipped embedding, 0.2 / 0.4 / 0.5 gave lower KNN=5 shares at
    # 80-90 % search reduction under Euclidean neighbours (closing note of the mammals issue)
    "mammals": dict(epochs=300, lr=1e-3, batch_size=128, optimizer="rmsprop", decay=0.3),
    "cifar100": dict(epochs=100, lr=1e-3, batch_size=128, optimizer="rmsprop"),
}

# a user's own embeddings: the training choices that worked on both shipped data sets
GENERIC_TRAINING = dict(epochs=200, lr=1e-3, batch_size=128, optimizer="rmsprop", decay=0.2)

PAPER_SETTINGS["cifar100-fig4"] = PAPER_SETTINGS["cifar100"]
TRAINING_SETTINGS["cifar100-fig4"] = TRAINING_SETTINGS["cifar100"]

GENERIC_KEYS = ("K", "D", "seed")


def default_params(dataset: str, model: str) -> dict:
    """Parameters ``train`` uses for ``model`` on ``dataset`` before command-line overrides."""
    paper = dict(PAPER_SETTINGS.get(dataset, {}))
    training = dict(TRAINING_SETTINGS.get(dataset, GENERIC_TRAINING))
    if model in HKD_FAMILY:
        return {**paper, **training}
    return {k: paper[k] for k in GENERIC_KEYS if k in paper}
