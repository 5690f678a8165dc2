"""Residual quantisation codes (RQ-k-means): the coarse-to-fine semantic IDs of TIGER-style work.

Level 1 is a K-means codebook of the data; level d + 1 is a K-means codebook of what is left
after subtracting the level 1..d codewords (the residuals). Digit d of a point is the index of its
codeword at level d + 1, so the first digits name coarse regions and the later ones refine them:

    x ~ C_1[c_1] + C_2[c_2] + ... + C_D[c_D]

Training and encoding are faiss's ``ResidualQuantizer`` (public API, faiss-cpu >= 1.7), set up as
plain greedy RQ-k-means: ``train_type = Train_default`` (ordinary k-means at every level, no
progressive-dimension or codebook-refinement steps) and ``max_beam_size = 1`` (each level takes
the nearest codeword of the current residual). A larger ``max_beam_size`` makes faiss keep that
many partial codes per point and pick the best full code (better reconstructions; digits then no
longer follow the greedy rule). faiss seeds its k-means from ``rq.cp.seed``, so ``fit`` is
deterministic for a given ``random_state``.

Codes are exposed unpacked, (n, D) int64 in [0, K); K must be a power of two because faiss packs
each digit into nbits = log2(K) bits. ``inverse_transform`` sums the codewords. The model is saved
as its codebooks (D, K, d) float32 and rebuilt from them on load (no pickle, no faiss bytes).

``history_`` holds one record per level: the mean squared reconstruction error of the training
rows using the first ``level`` codewords (non-increasing in practice, since each level fits the
residual of the previous ones).
"""
from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from hkd_core.models.base import CodeModel, ProgressCallback, check_choice, check_int
from hkd_core.models.torch_utils import check_features

METRICS = ("euclidean",)
from hkd_core.models.base import MAX_D, MAX_K  # noqa: E402  (the shared limits)
MAX_SEED = 2 ** 31 - 1   # faiss stores the k-means seed in a C int


def check_power_of_two_K(K) -> int:
    """K must be an integer power of two in [2, MAX_K]; returns nbits = log2(K)."""
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 2 or K > MAX_K \
            or (int(K) & (int(K) - 1)) != 0:
        raise ValueError(f"K must be a power of two in [2, {MAX_K}] (rq packs each digit into "
                         f"log2(K) bits: 2, 4, 8, ..., {MAX_K}), got {K!r}")
    return int(K).bit_length() - 1


class ResidualQuantization(CodeModel):
    """Residual quantisation (RQ-k-means) through faiss's ResidualQuantizer.

    Parameters
    ----------
    K : codebook size per level, a power of two in [2, 1024] (nbits = log2 K).
    D : number of levels M = code length, in [1, 64].
    n_iter : k-means iterations per level (faiss ``cp.niter``), >= 1.
    n_init : k-means runs per level, the best kept (faiss ``cp.nredo``), >= 1.
    max_beam_size : beam width of faiss's encoder, in [1, 1024]; 1 = greedy RQ-k-means.
    random_state : seed of faiss's k-means (``cp.seed``), in [0, 2**31 - 1].
    metric : only 'euclidean' (residuals are differences in the input space).
    """

    model_name = "rq"

    def __init__(self, K: int = 16, D: int = 16, n_iter: int = 25, n_init: int = 1,
                 max_beam_size: int = 1, random_state: int = 0, metric: str = "euclidean"):
        self.K = K
        self.D = D
        self.n_iter = n_iter
        self.n_init = n_init
        self.max_beam_size = max_beam_size
        self.random_state = random_state
        self.metric = metric

    def _validate_params(self) -> int:
        nbits = check_power_of_two_K(self.K)
        check_int("D", self.D, 1, MAX_D)
        check_int("n_iter", self.n_iter, 1, 10_000)
        check_int("n_init", self.n_init, 1, 100)
        check_int("max_beam_size", self.max_beam_size, 1, 1024)
        check_int("random_state", self.random_state, 0, MAX_SEED)
        check_choice("metric", self.metric, METRICS)
        return nbits

    def _new_quantizer(self, d: int):
        import faiss

        nbits = self._validate_params()
        rq = faiss.ResidualQuantizer(d, int(self.D), nbits)
        rq.train_type = faiss.ResidualQuantizer.Train_default
        rq.max_beam_size = int(self.max_beam_size)
        rq.verbose = False
        rq.cp.niter = int(self.n_iter)
        rq.cp.nredo = int(self.n_init)
        rq.cp.seed = int(self.random_state)
        rq.cp.verbose = False
        # faiss warns on stderr when a level has fewer than 39 points per centroid; small data
        # sets are legitimate here (the check below refuses fewer points than centroids).
        rq.cp.min_points_per_centroid = 1
        return rq

    def fit(self, X, y=None, progress: ProgressCallback | None = None) -> "ResidualQuantization":
        self._validate_params()
        X = np.ascontiguousarray(self._validate_fit_X(X), dtype=np.float32)
        n, d = X.shape
        if n < self.K:
            raise ValueError(f"rq needs at least K={self.K} training rows (k-means with K centroids "
                             f"at every level), got {n}; lower K or pass more rows")
        rq = self._new_quantizer(d)
        rq.train(X)
        self._rq = rq
        self.n_features_in_ = d
        self.codebooks_ = self._codebooks_from(rq, d)
        self.codes_ = self._encode(X)
        # Reconstruction after each level, from the codebooks faiss learned.
        X64 = X.astype(np.float64)
        X_hat = np.zeros_like(X64)

        def add_level(epoch: int) -> dict:
            level = epoch - 1
            X_hat[...] += self.codebooks_[level][self.codes_[:, level]]
            mse = float(((X_hat - X64) ** 2).sum(axis=1).mean())
            return {"loss": mse, "level": level + 1,
                    "n_codewords_used": int(len(np.unique(self.codes_[:, level])))}

        self._run_epochs(self.D, add_level, progress)        # one record per level
        return self

    def _codebooks_from(self, rq, d: int) -> np.ndarray:
        import faiss

        flat = faiss.vector_to_array(rq.codebooks).astype(np.float32)
        return flat.reshape(int(self.D), int(self.K), d)

    def _encode(self, X: np.ndarray) -> np.ndarray:
        import faiss

        packed = self._rq.compute_codes(np.ascontiguousarray(X, dtype=np.float32))
        nbits = check_power_of_two_K(self.K)
        return np.asarray(faiss.unpack_bitstrings(packed, int(self.D), nbits), dtype=np.int64)

    def transform(self, X) -> np.ndarray:
        X = check_features(self, X)
        check_is_fitted(self, "codebooks_")
        return self._encode(X)

    def inverse_transform(self, codes) -> np.ndarray:
        check_is_fitted(self, "codebooks_")
        codes = self._check_codes(codes)
        out = np.zeros((len(codes), self.codebooks_.shape[2]), dtype=np.float64)
        for level in range(self.D):
            out += self.codebooks_[level][codes[:, level]]
        return out.astype(np.float32)

    # Pickling (scikit-learn's clone/joblib): the faiss quantizer is a SWIG handle, so it is
    # left out and rebuilt from the codebooks, as load_model does.
    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_rq", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "codebooks_" in state:
            history = state.get("history_", [])
            self._set_state({"codebooks": state["codebooks_"]}, int(state["n_features_in_"]))
            self.history_ = history

    def _get_state(self) -> dict:
        return {"codebooks": self.codebooks_}

    def _set_state(self, state: dict, n_features: int) -> None:
        import faiss

        codebooks = np.asarray(state["codebooks"], dtype=np.float32)
        if codebooks.shape != (self.D, self.K, n_features):
            raise ValueError(f"saved codebooks have shape {codebooks.shape}, expected "
                             f"(D={self.D}, K={self.K}, n_features={n_features})")
        rq = self._new_quantizer(n_features)
        faiss.copy_array_to_vector(np.ascontiguousarray(codebooks).ravel(), rq.codebooks)
        rq.is_trained = True
        # Tables faiss builds after training (used by its beam search with LUTs).
        rq.compute_codebook_tables()
        self._rq = rq
        self.codebooks_ = codebooks
