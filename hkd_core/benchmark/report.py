"""Tables, JSON and share-vs-reduction plots of benchmark results (run.py), and the share-table
layout the CLI and the reproductions print too."""
from __future__ import annotations

import json
import os

LEVEL_KEYS = ("0.80", "0.90", "0.95")


def format_share_table(results: dict[str, dict], ks=("5", "10", "15", "20"), title="First N code(s)") -> str:
    """The paper's layout: one block per KNN, one row per model, then the reduction row(s)."""
    any_m = next(iter(results.values()))
    depth = len(any_m["reduction"])
    width = max(14, *(len(n) for n in results)) + 9
    lines = [f"{title:<{width}}" + "".join(f"{N:>7}" for N in range(1, depth + 1))]
    for k in ks:
        for i, (name, m) in enumerate(results.items()):
            if k not in m["share"]:
                continue
            head = f"KNN={k:<5}" if i == 0 else " " * 9
            lines.append(f"{head}{name:<{width - 9}}" + "".join(f"{v:>7.3f}" for v in m["share"][k]))
    for name, m in results.items():
        label = "Search reduction (%)" if len(results) == 1 else f"Reduction % {name}"
        lines.append(f"{label:<{width}}" + "".join(f"{100 * r:>7.1f}" for r in m["reduction"]))
    lines.extend(approximate_neighbour_notes(results))
    return "\n".join(lines)


def approximate_neighbour_notes(results: dict[str, dict]) -> list[str]:
    """One line per distinct approximate neighbour search behind the shares (none when exact):
    the shares are only as good as the neighbours' recall."""
    notes = {}
    for name, m in results.items():
        search = m.get("neighbour_search") or {}
        if search.get("approximate"):
            notes.setdefault((search["method"], m.get("neighbour_recall")), []).append(name)
    return [f"neighbours approximate ({', '.join(names)}): recall@{_k(method)} = {recall:.3f}; {method}"
            for (method, recall), names in notes.items()]


def _k(method: str) -> str:
    import re

    found = re.search(r"recall@(\d+)", method)
    return found.group(1) if found else "k"


def _ms(stat: dict, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    missing = stat["n"] < len(stat.get("values", [])) if stat.get("values") else False
    text = f"{stat['mean']:.{digits}f}±{stat['sd']:.{digits}f}"
    return text + ("*" if missing else "")


def verdicts(rows: dict, recommended: str) -> list[dict]:
    """The recommended coder against the best baseline at each level and on AUC: 'wins' when its
    mean is above the best baseline's by more than the larger seed spread, 'loses' when below by
    more than that, 'ties' otherwise."""
    if recommended not in rows:
        return []
    out = []
    for what in (*LEVEL_KEYS[:2], "auc"):
        def stat(r):
            return r["auc"] if what == "auc" else r["best_share"][what]
        mine = stat(rows[recommended])
        base = {name: stat(r) for name, r in rows.items() if r["baseline"]}
        base = {name: s for name, s in base.items() if s["mean"] is not None}
        if not base:
            continue
        best_name = max(base, key=lambda n: base[n]["mean"])
        best = base[best_name]
        if mine["mean"] is None:
            verdict, diff = "loses (level not reached)", None
        else:
            diff = mine["mean"] - best["mean"]
            margin = max(mine["sd"], best["sd"])
            verdict = "wins" if diff > margin else "loses" if diff < -margin else "ties"
        out.append({"what": what, "verdict": verdict, "recommended": mine["mean"],
                    "best_baseline": best_name, "baseline": best["mean"], "difference": diff})
    return out


def format_dataset(key: str, entry: dict, recommended: str | None = None, anchor: str = "hkm K=2") -> str:
    lines = []
    split = entry["split"]
    if entry.get("from"):
        lines.append(f"(rows of {key} from an earlier run: {entry['from']})")
    for metric, rows in entry["by_metric"].items():
        lines.append(f"== {key}: {entry['n']} rows x {entry['d']}-d; neighbours by {metric} distance; "
                     f"fit on {split['train']} train rows, settings chosen on {split['validation']} "
                     f"validation rows, reported on {split['test']} test rows (queries = database = "
                     f"test rows) ==")
        table = {name: {"share": r["share"], "reduction": r["reduction"],
                        "neighbour_search": r.get("neighbour_search"),
                        "neighbour_recall": r.get("neighbour_recall")} for name, r in rows.items()}
        lines.append(format_share_table(table, ks=("5", "10"), title="test, mean over seeds; N ="))
        lines.append("")
        anchor_cpu = rows.get(anchor, {}).get("cpu_seconds", {}).get("mean")
        head = (f"{'coder':<22}{'chosen on val.':<16}{'>=80%':>13}{'>=90%':>13}{'>=95%':>13}"
                f"{'AUC':>13}" + (f"{'agreement':>13}" if entry["has_tree"] else "")
                + f"{'groups N=1/2/4/8':>22}{'collide':>9}{'fit CPU s':>11}{'x ' + anchor:>12}")
        lines.append("best KNN=5 share at >= reduction, frontier AUC" +
                     (", hierarchy agreement (Spearman)" if entry["has_tree"] else "") +
                     "; mean±sd over seeds (* = a seed did not reach the level)")
        lines.append(head)
        for name, r in rows.items():
            groups = r["groups"]
            g = "/".join(f"{groups[N - 1]:.0f}" for N in (1, 2, 4, 8) if N <= len(groups))
            cpu = r["cpu_seconds"]["mean"]
            ratio = f"{cpu / anchor_cpu:.1f}" if anchor_cpu else "-"
            mark = " <" if name == recommended else ""
            lines.append(f"{(name + mark):<22}{r['chosen'][:15]:<16}"
                         + "".join(f"{_ms(r['best_share'][lv]):>13}" for lv in LEVEL_KEYS)
                         + f"{_ms(r['auc']):>13}"
                         + (f"{_ms(r['agreement']):>13}" if entry["has_tree"] else "")
                         + f"{g:>22}{r['full_code_collisions']['mean']:>9.1f}{cpu:>11.2f}{ratio:>12}")
        if any("hf_score" in r for r in rows.values()):
            lines.append("")
            lines.append("hierarchical clustering F-score of the test rows (HCRL Table 2: every "
                         "code-prefix node against the labels and their ancestors)")
            lines.append(f"{'coder':<22}{'F-score':>15}")
            for name, r in rows.items():
                if "hf_score" in r:
                    lines.append(f"{name:<22}{_ms(r['hf_score'], 4):>15}")
        if any("mahp250" in r for r in rows.values()):
            lines.append("")
            lines.append("hierarchical retrieval of the test rows (Hamming ranking, ties averaged; "
                         "shrewd/shred rank by their bits, the others by their digits)")
            lines.append(f"{'coder':<22}{'mAHP@250':>15}{'mAP':>15}")
            for name, r in rows.items():
                if "mahp250" in r:
                    lines.append(f"{name:<22}{_ms(r['mahp250'], 4):>15}{_ms(r['map'], 4):>15}")
        if recommended:
            v = verdicts(rows, recommended)
            if v:
                lines.append("")
                lines.append(f"{recommended} against the best baseline:")
                for item in v:
                    what = "AUC" if item["what"] == "auc" else f">= {float(item['what']) * 100:.0f} %"
                    mine = "-" if item["recommended"] is None else f"{item['recommended']:.3f}"
                    lines.append(f"  {what:<8} {item['verdict']:<26} {mine} vs {item['baseline']:.3f} "
                                 f"({item['best_baseline']})")
        lines.append("")
    for label, reason in entry.get("skipped", {}).items():
        lines.append(f"{key}: {label} skipped: {reason}")
    return "\n".join(lines)


def format_report(results: dict, recommended: str | None = None) -> str:
    p = results["protocol"]
    head = (f"HKD Explorer benchmark: seeds {p['seeds']} (split seed {p['split_seed']})"
            f"{', QUICK' if p['quick'] else ''}; queries: {p['queries']}, database: {p['database']}; "
            f"settings chosen on {p['chosen_on']}")
    return "\n".join([head, ""] + [format_dataset(k, e, recommended) for k, e in results["datasets"].items()])


README_START, README_END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def markdown_summary(results: dict, recommended: str | None, paper: str = "hkd") -> str:
    """The README's results table: per dataset and neighbour metric, the paper's HKD, the
    recommended coder and the best baseline at >= 80 / 90 % reduction and on AUC (test rows,
    mean ± sd over seeds), with the verdict."""
    p = results["protocol"]
    lines = [f"Test rows, mean ± sd over {len(p['seeds'])} seeds; settings chosen on validation rows; "
             f"queries = database = test rows; \"best baseline\" rows are the strongest baseline at "
             f">= 80 %, >= 90 % or on AUC.{' QUICK run (small data).' if p['quick'] else ''}", "",
             "| dataset | neighbours | coder | >= 80 % | >= 90 % | AUC | verdict |",
             "|---|---|---|---|---|---|---|"]
    for key, entry in results["datasets"].items():
        for metric, rows in entry["by_metric"].items():
            verdict = {v["what"]: v for v in verdicts(rows, recommended)} if recommended else {}
            shown = [n for n in dict.fromkeys([paper, recommended]) if n and n in rows]
            for what in (*LEVEL_KEYS[:2], "auc"):
                if what in verdict and verdict[what]["best_baseline"] not in shown:
                    shown.append(verdict[what]["best_baseline"])
            for name in shown:
                r = rows[name]
                text = ""
                if name == recommended and verdict:
                    text = ", ".join(f"{'AUC' if w == 'auc' else f'{float(w) * 100:.0f} %'}: {verdict[w]['verdict']}"
                                     for w in (*LEVEL_KEYS[:2], "auc") if w in verdict)
                role = " (recommended)" if name == recommended else " (paper)" if name == paper else " (best baseline)"
                lines.append(f"| {key} | {metric} | {name}{role} | {_ms(r['best_share']['0.80'])} | "
                             f"{_ms(r['best_share']['0.90'])} | {_ms(r['auc'])} | {text} |")
    return "\n".join(lines)


def update_readme(path: str, results: dict, recommended: str | None) -> None:
    """Replace the README's benchmark section (between the two markers) with a fresh table."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path} has no {README_START} ... {README_END} section to replace")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(head + README_START + "\n" + markdown_summary(results, recommended) + "\n" + README_END + tail)


def tradeoff_figure(rows: dict, highlight: str | None = None, title: str = "", k: str = "5",
                    width: int | None = None, height: int | None = None):
    """Share of the k nearest neighbours against search reduction, one line per coder, the depth
    N written at each point, ``highlight`` drawn bold (the benchmark's recommended coder, the app's
    current model). ``rows`` {label: {"share": {k: [...]}, "reduction": [...], "baseline": bool}}."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, r in rows.items():
        share = r["share"].get(k)
        if not share:
            continue
        bold = name == highlight
        fig.add_trace(go.Scatter(
            x=[100 * v for v in r["reduction"][:len(share)]], y=share, mode="lines+markers+text",
            name=html_escape(name), text=[str(N) for N in range(1, len(share) + 1)],
            textposition="top center", textfont={"size": 10},
            hovertemplate=html_escape(name) + "<br>N=%{text}: share %{y:.3f} at %{x:.1f} % reduction<extra></extra>",
            line={"width": 4 if bold else 1.5, "dash": "dot" if r.get("baseline") and not bold else "solid"},
            marker={"size": 9 if bold else 6}))
    fig.update_layout(title=html_escape(title), xaxis_title="search reduction (%)",
                      yaxis_title=f"share of {k}-NN sharing the first N digits",   # fits a 380 px chart
                      template="plotly_white", width=width, height=height,
                      margin=dict(l=60, r=10, t=40 if title else 10, b=50))
    return fig


def html_escape(text) -> str:
    import html

    return html.escape(str(text), quote=True)


def frontier_figure(key: str, metric: str, rows: dict, recommended: str | None = None):
    """The benchmark's plot for one dataset and neighbour metric (test rows, seed means)."""
    return tradeoff_figure(rows, recommended, f"{key}: KNN=5 share vs search reduction ({metric} "
                           "neighbours, test rows)", width=1000, height=650)


def write_outputs(results: dict, out_dir: str, recommended: str | None = None, png: bool = True) -> list[str]:
    """results.json, report.txt and per dataset x metric a frontier plot (HTML, and PNG when
    kaleido can start a browser). Returns the written paths."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    path = os.path.join(out_dir, "results.json")
    with open(path, "w") as fh:
        json.dump(results, fh, indent=1)
    written.append(path)
    path = os.path.join(out_dir, "report.txt")
    with open(path, "w") as fh:
        fh.write(format_report(results, recommended) + "\n")
    written.append(path)
    for key, entry in results["datasets"].items():
        for metric, rows in entry["by_metric"].items():
            stem = os.path.join(out_dir, f"frontier_{_slug(key)}_{metric}")
            fig = frontier_figure(key, metric, rows, recommended)
            fig.write_html(stem + ".html", include_plotlyjs=True)
            written.append(stem + ".html")
            if png:
                try:
                    fig.write_image(stem + ".png")
                    written.append(stem + ".png")
                except Exception as exc:   # no browser for kaleido: the HTML still stands
                    print(f"PNG not written ({type(exc).__name__}: {exc}); the HTML plot is there")
                    png = False
    return written


def _slug(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
