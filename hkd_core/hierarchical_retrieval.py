"""Hierarchical retrieval quality of codes: mean average hierarchical precision (mAHP@k).

Definitions (Deng, Berg & Fei-Fei, CVPR 2011; Barz & Denzler, WACV 2019; used by SHREWD,
../shared/papers/004_4a2e14ace94125e9.txt, Table 1 "mAHP@250" on CIFAR-100):

* class similarity  s(a, b) = 1 - height(lca(a, b)) / height(root), where the height of a node
  is the length of the longest downward path from it to a leaf. In the flat CIFAR-100 20 x 5
  tree: same class 1, same superclass 1 - 1/2 = 0.5, otherwise 0. In Barz & Denzler's WordNet
  tree of CIFAR-100 (the default hierarchy of the CIFAR-100 data sets, height 8) e.g.
  s(lion, tiger) = 1 - 1/8 (lca feline), s(lion, wolf) = 1 - 2/8 (lca carnivore),
  s(lion, bicycle) = 0 (lca the root, entity).
* every query q (each test item) ranks all OTHER test items by the Hamming distance between
  their codes and its code. Items at the same Hamming distance are TIED: the codes do not order
  them, so nothing else (features, index) may. The score is the expectation over the uniformly
  random orderings of every tie block (each block ordered independently), computed exactly.
  With r_1, r_2, ... the retrieved items,
      HP@i(q) = sum_{j<=i} s(q, r_j) / max over rankings of the same sum
              = cumulative similarity of the top i / sum of the i largest similarities to q.
* Expected HP with ties. Sort the other items into blocks B_1, B_2, ... of equal Hamming
  distance (nearest first); block B has m_B items, similarity sum S_B and mean mu_B = S_B / m_B,
  and starts after a_B = sum of the sizes of the blocks before it. Within a uniformly random
  ordering of B every position holds each member of B with probability 1 / m_B, so its expected
  similarity is mu_B. Hence for a rank i inside B (a_B < i <= a_B + m_B)
      E[sum_{j<=i} s(q, r_j)] = sum_{B' before B} S_B' + (i - a_B) * mu_B,
  i.e. the expected cumulative similarity is the piecewise-linear interpolation of the exact
  cumulative sums at the block boundaries. The denominator does not depend on the ordering, and
  AHP is linear in the HP curve, so E[HP@i] = E[cumulative]/ideal and E[AHP@k] = AHP@k of the
  expected curve: this is what is returned. Constant codes therefore score the expected AHP of a
  uniformly random ranking (chance level), and codes whose Hamming order matches the class
  similarity order score the ideal.
* AHP@k(q) = area under HP@i for i = 1..k, normalised by k:
      integration="trapezoid" (1/k) [sum_i HP@i - (HP@1 + HP@k)/2]  (default: np.trapz with
                              dx=1/k, as in Barz & Denzler's evaluation code; ideal (k-1)/k)
      integration="mean"      (1/k) sum_{i=1..k} HP@i              (ideal = 1.0)
  Queries whose best possible sum is 0 (no item shares any ancestor below the root with them)
  have an undefined HP and are skipped; mAHP@k = mean of AHP@k over the remaining queries.
* k larger than n - 1 is clipped to n - 1 (there are only n - 1 other items).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

_ROOT = "<root>"


def class_similarity_from_hierarchy(hierarchy: dict) -> tuple[list[str], np.ndarray]:
    """Similarity 1 - height(lca)/height(root) between every pair of nodes of a tree.

    hierarchy: mapping child -> parent (e.g. CIFAR fine class -> superclass). A single node
    without a parent is the root; several such nodes hang under an implicit common root.
    Returns (sorted node names, similarity matrix) over all named nodes (never the implicit
    root); the leaves are the classes usually compared."""
    if not isinstance(hierarchy, dict) or not hierarchy:
        raise ValueError("hierarchy must be a non-empty dict mapping child label -> parent label")
    parent = {str(c): str(p) for c, p in hierarchy.items()}
    nodes = sorted(set(parent) | set(parent.values()))
    if _ROOT in nodes:
        raise ValueError(f"hierarchy must not contain the reserved node name {_ROOT!r}")
    tops = [node for node in nodes if node not in parent]
    if not tops:
        raise ValueError("hierarchy has a cycle: every node has a parent")
    # A single top node is the root; several tops (e.g. CIFAR's 20 superclasses) get a common one.
    root = tops[0] if len(tops) == 1 else _ROOT
    for node in tops:
        if node != root:
            parent[node] = root

    def path_to_root(node: str) -> list[str]:
        path, seen = [node], {node}
        while path[-1] != root:
            nxt = parent[path[-1]]
            if nxt in seen:
                raise ValueError(f"hierarchy has a cycle through {nxt!r}")
            path.append(nxt)
            seen.add(nxt)
        return path

    paths = {node: path_to_root(node) for node in nodes}
    height: dict[str, int] = defaultdict(int)
    for node in nodes:  # height = longest path down to a leaf
        for steps, ancestor in enumerate(paths[node]):
            height[ancestor] = max(height[ancestor], steps)
    root_height = height[root]
    sim = np.zeros((len(nodes), len(nodes)))
    ancestors = [set(paths[n]) for n in nodes]
    for i, a in enumerate(nodes):
        for j in range(i, len(nodes)):
            # lowest common ancestor = first node on a's root path that is also above b
            lca = next(x for x in paths[a] if x in ancestors[j])
            sim[i, j] = sim[j, i] = 1.0 - height[lca] / root_height
    return nodes, sim


def _label_similarity(labels, hierarchy) -> np.ndarray:
    """(n, n) similarity between the classes of every pair of items."""
    nodes, sim = class_similarity_from_hierarchy(hierarchy)
    position = {name: i for i, name in enumerate(nodes)}
    labels = [str(x) for x in labels]
    missing = sorted(set(labels) - set(position))
    if missing:
        raise ValueError(f"labels not in the hierarchy: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    idx = np.fromiter((position[x] for x in labels), dtype=np.int64, count=len(labels))
    class_ids, item_class = np.unique(idx, return_inverse=True)
    return sim[np.ix_(class_ids, class_ids)], item_class


def _check_not_features(labels, hierarchy) -> None:
    """A caller still passing the removed ``features`` argument gets a clear message."""
    if not isinstance(hierarchy, dict) and np.ndim(labels) == 2:
        raise TypeError("mAHP no longer takes features: call it as (codes, labels, hierarchy, k=...); "
                        "Hamming ties are averaged over, not broken by feature distance")


def hierarchical_precision_curve(codes, labels, hierarchy, k: int = 250,
                                 chunk_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-query EXPECTED HP@1..k over the random orderings of Hamming ties (module docstring).

    Returns (hp of shape (n_valid_queries, k'), indices of those queries), with
    k' = min(k, n - 1); queries whose best possible sum is 0 are left out."""
    _check_not_features(labels, hierarchy)
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be a 2-d integer array (n, D), got {codes.dtype} {codes.shape}")
    n = len(codes)
    if len(labels) != n:
        raise ValueError(f"labels must have one entry per code ({n}), got {len(labels)}")
    if n < 2:
        raise ValueError("mAHP needs at least 2 items")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    k = int(min(k, n - 1))
    class_sim, item_class = _label_similarity(labels, hierarchy)

    # Ideal cumulative similarity per class: the class's similarity to every item, sorted
    # descending, minus the query itself (which always has similarity 1 to its own class).
    class_counts = np.bincount(item_class, minlength=len(class_sim))
    best_cum = np.empty((len(class_sim), k))
    for c in range(len(class_sim)):
        counts = class_counts.copy()
        counts[c] -= 1
        sims = np.repeat(class_sim[c], counts)
        best_cum[c] = np.cumsum(np.sort(sims)[::-1][:k])

    n_blocks = codes.shape[1] + 2        # Hamming 0..D, and D + 1 for the query itself
    ranks = np.arange(1, k + 1)
    hp_rows, query_rows = [], []
    rows = np.arange(n)
    for start in range(0, n, chunk_size):
        q = rows[start:start + chunk_size]
        nq = len(q)
        local = np.arange(nq)
        hamming = (codes[q, None, :] != codes[None, :, :]).sum(-1)
        # The query itself is never retrieved: a block of its own after every other item.
        hamming[local, q] = n_blocks - 1
        sims = class_sim[item_class[q][:, None], item_class[None, :]]
        sims[local, q] = 0.0
        # Per query and Hamming distance h: block size m_h and similarity sum S_h.
        flat = (local[:, None] * n_blocks + hamming).ravel()
        size = np.bincount(flat, minlength=nq * n_blocks).reshape(nq, n_blocks)
        total = np.bincount(flat, weights=sims.ravel(), minlength=nq * n_blocks).reshape(nq, n_blocks)
        end = np.cumsum(size, axis=1)            # a_h + m_h
        before_sum = np.cumsum(total, axis=1) - total
        # Block holding rank i: the first h with a_h + m_h >= i. Offsetting each query's block
        # ends by query * (n + 1) makes one sorted array, so one searchsorted finds them all.
        offset = local[:, None] * (n + 1)
        h = np.searchsorted((end + offset).ravel(), (ranks[None, :] + offset).ravel(), side="left")
        h = h.reshape(nq, k) - local[:, None] * n_blocks
        row = local[:, None]
        m = size[row, h]                          # >= 1: rank i lies inside block h
        a = end[row, h] - m
        expected_cum = before_sum[row, h] + (ranks[None, :] - a) * (total[row, h] / m)
        best = best_cum[item_class[q]]
        valid = best[:, 0] > 0
        hp_rows.append(expected_cum[valid] / best[valid])
        query_rows.append(q[valid])
    return np.concatenate(hp_rows), np.concatenate(query_rows)


def mean_average_hierarchical_precision(codes, labels, hierarchy, k: int = 250,
                                        integration: str = "trapezoid") -> float:
    """Expected mAHP@k of code-based retrieval over a set of items (see the module docstring).

    codes (n, D) ints; labels: one class name per item; hierarchy: child -> parent mapping (e.g.
    the WordNet tree of CIFAR-100, or fine class -> superclass). Items at equal Hamming distance
    from a query are tied and the score is the exact expectation over their random orderings,
    so it measures the codes alone. integration: "trapezoid" (default, Barz & Denzler; ideal
    (k-1)/k) or "mean" (ideal 1)."""
    if integration not in ("mean", "trapezoid"):
        raise ValueError(f"integration must be 'mean' or 'trapezoid', got {integration!r}")
    hp, _ = hierarchical_precision_curve(codes, labels, hierarchy, k)
    if len(hp) == 0:
        raise ValueError("no query has a positive best similarity: every item is alone under the root")
    width = hp.shape[1]
    area = hp.sum(1)
    if integration == "trapezoid":
        area = area - 0.5 * (hp[:, 0] + hp[:, -1])
    return float(np.mean(area / width))


def mean_average_precision(codes, labels, k: int | None = None, chunk_size: int = 128) -> float:
    """Expected mAP@k of Hamming-distance retrieval with Hamming ties averaged over exactly.

    Relevant = the same label as the query (the flat notion of SHREWD's Table 1 "mAP"). Every
    query ranks all OTHER items by Hamming distance between codes; items at equal distance are a
    tie block ordered uniformly at random, and the score is the exact expectation over those
    orderings (McSherry & Najork, ECIR 2008). For a block of m items holding r relevant ones,
    after a earlier items of which c are relevant, position i = a + t (t = 1..m) contributes
        E[rel_i * prec@i] = (r / m) * ((c + 1) + (t - 1) * (r - 1) / (m - 1)) / i
    (the second term is 0 when m = 1). AP@k = sum of these over i <= k divided by
    min(R, k), R = the query's relevant items; k=None ranks everything (AP over the full list).
    Queries without any relevant item are skipped; mAP = mean over the rest.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be a 2-d integer array (n, D), got {codes.dtype} {codes.shape}")
    n = len(codes)
    if len(labels) != n:
        raise ValueError(f"labels must have one entry per code ({n}), got {len(labels)}")
    if n < 2:
        raise ValueError("mAP needs at least 2 items")
    if k is None:
        k = n - 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1 or None, got {k!r}")
    k = int(min(k, n - 1))
    _, item_class = np.unique(np.asarray([str(x) for x in labels]), return_inverse=True)
    n_blocks = codes.shape[1] + 2          # Hamming 0..D, and D + 1 for the query itself
    ranks = np.arange(1, k + 1)
    scores = []
    for start in range(0, n, chunk_size):
        q = np.arange(start, min(start + chunk_size, n))
        nq, local = len(q), np.arange(len(q))
        hamming = (codes[q, None, :] != codes[None, :, :]).sum(-1)
        hamming[local, q] = n_blocks - 1
        rel = (item_class[q][:, None] == item_class[None, :]).astype(np.float64)
        rel[local, q] = 0.0
        flat = (local[:, None] * n_blocks + hamming).ravel()
        size = np.bincount(flat, minlength=nq * n_blocks).reshape(nq, n_blocks)
        n_rel = np.bincount(flat, weights=rel.ravel(), minlength=nq * n_blocks).reshape(nq, n_blocks)
        end = np.cumsum(size, axis=1)
        rel_before = np.cumsum(n_rel, axis=1) - n_rel
        offset = local[:, None] * (n + 1)
        h = np.searchsorted((end + offset).ravel(), (ranks[None, :] + offset).ravel(), side="left")
        h = h.reshape(nq, k) - local[:, None] * n_blocks
        row = local[:, None]
        m, r, c = size[row, h], n_rel[row, h], rel_before[row, h]
        t = ranks[None, :] - (end[row, h] - m)
        pair = np.where(m > 1, (t - 1) * (r - 1) / np.maximum(m - 1, 1), 0.0)
        contrib = (r / m) * ((c + 1) + pair) / ranks[None, :]
        total_rel = rel.sum(1)
        valid = total_rel > 0
        ap = contrib.sum(1)[valid] / np.minimum(total_rel[valid], k)
        scores.append(ap)
    scores = np.concatenate(scores)
    if len(scores) == 0:
        raise ValueError("no query has a relevant item: every label occurs once")
    return float(scores.mean())
