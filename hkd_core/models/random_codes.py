"""Random codes: the floor every learned code must beat.

Each distinct point gets a uniformly random code that depends only on the seed and the point's
float32 bytes (a keyed BLAKE2b hash of the row, expanded to D digits). So the codes carry no
geometry at all, yet ``transform`` is a function: the same point always gets the same code,
``transform(X_train) == codes_``, and another seed gives independent codes. Duplicated rows share a
code.

``inverse_transform`` returns, for a code, the mean of the training rows that have exactly that
code, and the mean of all training rows for codes no training row has.
"""
from __future__ import annotations

import hashlib

import numpy as np

from hkd_core.models.base import CodeModel, ProgressCallback, check_int
from hkd_core.models.dccl import MAX_D, MAX_K, check_features

_BYTES_PER_DIGIT = 8    # 64 random bits per digit: the modulo bias for K <= 1024 is < 1e-16


def hashed_uniform_codes(X: np.ndarray, K: int, D: int, seed: int) -> np.ndarray:
    """Codes (n, D) uniform in [0, K), a deterministic function of (seed, row bytes)."""
    X = np.ascontiguousarray(X, dtype=np.float32) + np.float32(0.0)   # +0.0 maps -0.0 to 0.0
    key = int(seed).to_bytes(8, "little")
    n_bytes = _BYTES_PER_DIGIT * D
    words = np.empty((len(X), D), dtype=np.uint64)
    for i, row in enumerate(X):
        digest = b"".join(
            hashlib.blake2b(row.tobytes() + block.to_bytes(4, "little"), digest_size=64, key=key).digest()
            for block in range(-(-n_bytes // 64)))
        words[i] = np.frombuffer(digest[:n_bytes], dtype="<u8")
    return (words % np.uint64(K)).astype(np.int64)


class RandomCodes(CodeModel):
    """Uniform random codes (seeded hash of each row).

    Parameters
    ----------
    K, D : codes have D digits in [0, K).
    random_state : changes every code; same seed -> same codes.
    """

    model_name = "random"

    def __init__(self, K: int = 16, D: int = 16, random_state: int = 0):
        self.K = K
        self.D = D
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_int("K", self.K, 2, MAX_K)
        check_int("D", self.D, 1, MAX_D)
        check_int("random_state", self.random_state, 0, 2 ** 63 - 1)

    def fit(self, X, y=None, progress: ProgressCallback | None = None) -> "RandomCodes":
        self._validate_params()
        X = self._validate_fit_X(X)
        self.n_features_in_ = X.shape[1]
        self.codes_ = hashed_uniform_codes(X, self.K, self.D, self.random_state)
        unique_codes, inverse = np.unique(self.codes_, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        sums = np.zeros((len(unique_codes), X.shape[1]), dtype=np.float64)
        np.add.at(sums, inverse, X)
        self.code_table_ = unique_codes
        self.code_means_ = (sums / np.bincount(inverse)[:, None]).astype(np.float32)
        self.global_mean_ = X.astype(np.float64).mean(axis=0).astype(np.float32)
        mse = float(((self.code_means_[inverse] - X.astype(np.float64)) ** 2).sum(axis=1).mean())
        self._run_epochs(1, lambda epoch: {"loss": mse}, progress)
        return self

    def transform(self, X) -> np.ndarray:
        X = check_features(self, X)
        return hashed_uniform_codes(X, self.K, self.D, self.random_state)

    def inverse_transform(self, codes) -> np.ndarray:
        return self._code_mean_reconstruction(codes)

    def _get_state(self) -> dict:
        return {"code_table": self.code_table_, "code_means": self.code_means_,
                "global_mean": self.global_mean_}

    def _set_state(self, state: dict, n_features: int) -> None:
        self._validate_params()
        self.code_table_ = np.asarray(state["code_table"], dtype=np.int64)
        self.code_means_ = np.asarray(state["code_means"], dtype=np.float32).reshape(-1, n_features)
        self.global_mean_ = np.asarray(state["global_mean"], dtype=np.float32)
