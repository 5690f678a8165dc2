"""The prefix tree of codes: groups by shared prefix, sunburst frames and a prefix index.

Codes are (n, D) small integers. Rows that share their first N digits form a prefix group; the
HKD decay makes these groups the coarse-to-fine clusters of the data, so the same tree drives the
map colours (one group id per row and depth), the code-tree sunburst and, in index.py, the
prefix index that searches the most promising branches first.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# The prefix structure (CodeTree) and the search index over it (PrefixIndex) live in index.py;
# tree.PrefixIndex is the same class, kept importable from here.
from hkd_core.index import CodeTree, PrefixIndex, check_codes  # noqa: F401


def _check_depth(depth, D):
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or not 0 <= depth <= D:
        raise ValueError(f"depth must be an integer in [0, {D}], got {depth!r}")
    return int(depth)


def format_code(code, K: int | None = None) -> str:
    """One character per digit when K <= 16 (hex digits, as compact as the paper's tables),
    otherwise dot-separated numbers."""
    code = [int(c) for c in code]
    if K is None:
        K = max(code, default=0) + 1
    if K <= 16:
        return "".join("0123456789abcdef"[c] for c in code)
    return ".".join(str(c) for c in code)


def format_codes(codes, K: int | None = None) -> list[str]:
    codes = check_codes(codes)
    if K is None:
        K = int(codes.max()) + 1 if codes.size else 1
    if K <= 16 and codes.size:
        # Vectorised: map digits to characters and join each row.
        chars = np.array(list("0123456789abcdef"))[codes]
        return ["".join(row) for row in chars]
    return [format_code(row, K) for row in codes]


def prefix_groups(codes, depth: int) -> np.ndarray:
    """Group id per row for the first ``depth`` digits.

    Ids are ranked by group size (0 = largest group; ties broken by prefix order), so a palette
    of M colours covers exactly the M largest groups with ``ids < M``. depth 0 puts every row in
    group 0."""
    codes = check_codes(codes)
    depth = _check_depth(depth, codes.shape[1])
    n = len(codes)
    if depth == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    _, inverse, counts = np.unique(codes[:, :depth], axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    # Stable sort by -count keeps lexicographic prefix order among equal sizes.
    rank_of_group = np.empty(len(counts), dtype=np.int64)
    rank_of_group[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    return rank_of_group[inverse]


def group_table(codes, depth: int, K: int | None = None) -> pd.DataFrame:
    """One row per prefix group at ``depth``, largest first: group (id as in prefix_groups),
    prefix (formatted code), size."""
    codes = check_codes(codes)
    groups = prefix_groups(codes, depth)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    sizes = np.bincount(groups, minlength=n_groups)
    first_row = np.full(n_groups, -1)
    first_row[groups[::-1]] = np.arange(len(groups))[::-1]
    prefixes = [format_code(codes[r, :depth], K) if depth else "" for r in first_row]
    return pd.DataFrame({"group": np.arange(n_groups), "prefix": prefixes, "size": sizes})


def parse_prefix(node_id: str) -> list[int]:
    """Sunburst node id ('3.7.1', '' for the root, '3.7.other' for aggregates) -> digits."""
    if not node_id or node_id == "root":
        return []
    parts = node_id.split(".")
    if parts[-1] == "other":
        raise ValueError(f"{node_id!r} is an aggregate of small branches, not a single prefix")
    return [int(p) for p in parts]


def sunburst_frame(codes, names=None, max_depth: int = 4, min_branch_size: int | None = None,
                   K: int | None = None, n_examples: int = 3) -> pd.DataFrame:
    """Flat frame for a plotly sunburst (branchvalues='total') of the code prefixes.

    Columns: ids ('3.7', '' is never used: the root is 'root'), parents, labels (the digit),
    values (members), depth, prefix (formatted), examples (a few member names).
    Children smaller than ``min_branch_size`` are merged into one '<parent>.other' leaf so the
    chart stays readable; the values of the children of a node always sum to the node's value.
    """
    codes = check_codes(codes)
    n, D = codes.shape
    max_depth = _check_depth(max_depth, D)
    if min_branch_size is None:
        min_branch_size = max(1, n // 200)
    if isinstance(min_branch_size, bool) or not isinstance(min_branch_size, (int, np.integer)) or min_branch_size < 1:
        raise ValueError(f"min_branch_size must be an integer >= 1, got {min_branch_size!r}")
    if names is not None and len(names) != n:
        raise ValueError(f"names has {len(names)} entries for {n} codes")
    if K is None:
        K = int(codes.max()) + 1 if codes.size else 1
    index = CodeTree(codes)
    sc = index.sorted_codes
    rows = {"ids": ["root"], "parents": [""], "labels": ["all"], "values": [n], "depth": [0],
            "prefix": [""], "examples": [_examples(names, index.order[:n_examples])]}

    def add(node_id, parent, label, value, depth, prefix, member_rows):
        rows["ids"].append(node_id)
        rows["parents"].append(parent)
        rows["labels"].append(label)
        rows["values"].append(int(value))
        rows["depth"].append(depth)
        rows["prefix"].append(prefix)
        rows["examples"].append(_examples(names, member_rows[:n_examples]))

    # Walk the sorted codes: the children of the range [lo, hi) at depth d are the runs of
    # equal values of column d inside that range.
    stack = [("root", 0, n, 0, [])]
    while stack:
        node_id, lo, hi, d, prefix = stack.pop()
        if d >= max_depth:
            continue
        col = sc[lo:hi, d]
        cuts = np.flatnonzero(np.diff(col)) + 1
        starts = np.concatenate([[0], cuts]) + lo
        stops = np.concatenate([cuts, [hi - lo]]) + lo
        small_rows, small_total = [], 0
        for a, b in zip(starts, stops):
            digit = int(sc[a, d])
            size = int(b - a)
            if size < min_branch_size:
                small_total += size
                small_rows.extend(index.order[a:min(b, a + n_examples)].tolist())
                continue
            child_prefix = prefix + [digit]
            child_id = ".".join(map(str, child_prefix))
            add(child_id, node_id, format_code([digit], K), size, d + 1, format_code(child_prefix, K),
                index.order[a:b])
            stack.append((child_id, int(a), int(b), d + 1, child_prefix))
        if small_total:
            other_id = (node_id if node_id != "root" else "") + (".other" if node_id != "root" else "other")
            add(other_id, node_id, "other", small_total, d + 1,
                (format_code(prefix, K) if prefix else "") + "*", np.asarray(small_rows))
    frame = pd.DataFrame(rows)
    # Parents before children, siblings largest first: stable and easy to read.
    return frame.sort_values(["depth", "values"], ascending=[True, False], kind="stable").reset_index(drop=True)


def _examples(names, rows) -> str:
    if names is None:
        return ""
    return ", ".join(str(names[int(r)]) for r in rows)


def node_members(index: CodeTree, frame: pd.DataFrame, node_id: str) -> np.ndarray:
    """Rows under a sunburst node. For an 'other' aggregate: the parent's rows minus those of
    the parent's listed (large) children."""
    if node_id in ("", "root"):
        return np.arange(len(index.codes))
    if not node_id.endswith("other"):
        return index.members(parse_prefix(node_id))
    parent = node_id[: -len("other")].rstrip(".") or "root"
    rows = node_members(index, frame, parent)
    siblings = frame.loc[(frame["parents"] == parent) & (frame["ids"] != node_id), "ids"]
    taken = [index.members(parse_prefix(s)) for s in siblings]
    if taken:
        rows = np.setdiff1d(rows, np.concatenate(taken))
    return rows


def branch_labeller(names=None, labels=None, ancestors=None):
    """A function rows -> what the members of a branch share, in words:

    * with a known tree of items (``ancestors``: per row {node: depth}, Dataset.item_ancestors):
      their lowest common ancestor, e.g. "canine.n.02"; if the members share only the root, the
      deepest node that holds at least half of them, with its share ("carnivore.n.01 (87 %)");
    * with labels: the majority label and its purity, "cat (92 %)";
    * otherwise the most frequent word of the names ("dog ×12"), or the one name.

    Label codes are computed once, so labelling many branches of a large data set stays cheap."""
    if ancestors is not None:
        return lambda rows: _lca_label(np.asarray(rows, dtype=np.int64).reshape(-1), ancestors)
    if labels is not None:
        values, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)

        def by_label(rows):
            rows = np.asarray(rows, dtype=np.int64).reshape(-1)
            if len(rows) == 0:
                return ""
            counts = np.bincount(codes[rows], minlength=len(values))
            top = int(np.argmax(counts))
            return f"{values[top]} ({100 * counts[top] / len(rows):.0f} %)"
        return by_label
    return lambda rows: _name_label(np.asarray(rows, dtype=np.int64).reshape(-1), names)


def _lca_label(rows, ancestors) -> str:
    from collections import Counter

    if len(rows) == 0:
        return ""
    first = ancestors[rows[0]]
    common = set(first)
    for r in rows[1:]:
        common &= ancestors[r].keys()
    best = max(common, key=lambda a: (first[a], str(a)), default=None)
    if best is not None and (first[best] > 0 or len(rows) == 1):
        return str(best)
    counts = Counter(a for r in rows for a in ancestors[r])
    depth_of: dict = {}
    for r in rows:
        depth_of.update(ancestors[r])
    node = max((a for a, c in counts.items() if 2 * c >= len(rows)),
               key=lambda a: (depth_of[a], counts[a], str(a)), default=best)
    if node is None:
        return ""
    share = counts[node] / len(rows)
    return str(node) if share == 1 else f"{node} ({100 * share:.0f} %)"


def _name_label(rows, names) -> str:
    import re
    from collections import Counter

    if names is None or len(rows) == 0:
        return ""
    tokens = Counter(t for r in rows[:5000] for t in set(re.findall(r"[A-Za-z]{3,}", str(names[r]).lower())))
    if len(rows) > 1 and tokens:
        token, count = tokens.most_common(1)[0]
        if count >= 2:
            return f"{token} ×{count}"
    return str(names[rows[0]])
