"""Growth of the vector analyses with N: the million-vector run of :mod:`scale` repeated on more
synthetic vectors (same generator, same child process, same measures; no LanceDB IVF-PQ index
on these tables - the analyses do not read it; the vectors are read into a memory-mapped file,
as ``analyze`` does when they exceed a share of the machine's memory, so the peak RSS is also
given without the file pages the system can drop), the growth exponent between measured sizes,
and ten million on paper where it was not measured.

    python bench/scale_growth.py 3000000 [10000000 ...]

``make bench ARGS="--only scale"`` measures the sizes in ``VC_BENCH_SCALE_SIZES`` (default
``3000000``; add ``10000000`` for ten million: about an hour more on 2 cores and ~21 GB of disk).
Sizes also listed in ``VC_BENCH_SCALE_REUSE`` are not measured again: their last measurement
(the JSON an earlier run of this command left in the bench folder) is used, and its row says
when it was measured - so ten million, measured once, can stay in the table while the smaller
sizes are re-measured. ``VC_BENCH_SCALE_MEMORY_GIB=16`` runs each measured size inside a memory
cgroup of 16 GiB (:mod:`memlimit`; Linux, as root): the memory goal checked by the kernel.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import scale

TEN_M = 10_000_000
#: float32 multiply-adds of the graph: rows x probes x rows per cell x D x 2
GRAPH_FLOPS = "N x n_probe x (N / n_lists) x D x 2"


def _sizes(raw: str) -> list[int]:
    return [int(x) for x in raw.replace(" ", "").split(",") if x]


def sizes_from_env(quick: bool) -> list[int]:
    return _sizes(os.environ.get("VC_BENCH_SCALE_SIZES", "300000" if quick else "3000000"))


def memory_limit_gib():
    """``VC_BENCH_SCALE_MEMORY_GIB``: each measured size runs inside a memory cgroup of this
    many GiB (file cache included; :mod:`memlimit`), or ``None``."""
    raw = os.environ.get("VC_BENCH_SCALE_MEMORY_GIB", "").strip()
    return float(raw) if raw else None


def reused_sizes() -> set[int]:
    """The sizes in ``VC_BENCH_SCALE_REUSE``: taken from their last measurement."""
    return set(_sizes(os.environ.get("VC_BENCH_SCALE_REUSE", "")))


def run_size(n, uri=None) -> dict:
    """The analyses on ``n`` synthetic vectors in a child process (see :func:`scale.worker_million`),
    or their last measurement when ``n`` is in :func:`reused_sizes`."""
    if n in reused_sizes():
        path = scale.WORK / f"scale-million-{n}.json"
        if not path.exists():
            raise SystemExit(f"VC_BENCH_SCALE_REUSE names {n:,} but it was never measured here "
                             f"({path} is missing): measure it once first")
        res = json.loads(path.read_text())
        res["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))
        return res
    uri = uri or str(scale.WORK / "lancedb-scale")
    t = time.perf_counter()
    _, meta = scale.build_million(n, uri, index=False)
    build_s = time.perf_counter() - t
    out = scale.WORK / f"scale-million-{n}.json"
    cmd = [sys.executable, scale.__file__, "_worker_million", "--n", str(n), "--uri", uri,
           "--out", str(out), "--mmap"]
    gib = memory_limit_gib()
    t = time.perf_counter()
    if gib is None:
        subprocess.run(cmd, check=True, env=dict(os.environ))
        limit = None
    else:
        import memlimit

        with memlimit.limited(gib) as (enter, peak):
            rc = subprocess.run(cmd, env=dict(os.environ), preexec_fn=enter).returncode
            limit = peak()
        if rc != 0:
            raise SystemExit(f"{n:,} vectors: the child ended with {rc} inside a {gib:g} GiB "
                             f"memory limit (charged at most {limit['peak_gib']:.1f} GiB): "
                             "it does not fit")
    res = json.loads(out.read_text())
    if limit is not None:
        res["memory_limit"] = limit
        out.write_text(json.dumps(res, indent=1))     # kept with the run, for reuse
    res["child_wall_s"] = time.perf_counter() - t
    res["build"] = dict(seconds=build_s, write_s=meta["write_s"], reused=meta["reused"])
    return res


def _knn_s(r):
    return next(v for k, v in r["steps"].items() if k.startswith("kNN"))


def graph_gflops(r) -> float:
    """Achieved float32 GFLOP/s of the graph's products: the row pairs the run multiplied
    (``products`` in its graph info), or, for runs that did not record them, N x n_probe x
    (N / n_lists) (cells taken as equal)."""
    i = r["knn_info"]
    pairs = i.get("products") or r["n"] * i["n_probe"] * (r["n"] / i["n_lists"])
    return pairs * 512 * 2 / _knn_s(r) / 1e9


def _anon(r) -> str:
    """The anonymous part of the peak RSS (without the memory-mapped vectors' file pages)."""
    return f"{r['peak_anon_rss_gb']:.2f}" if "peak_anon_rss_gb" in r else "-"


def _anon_at_ten_m(a, b) -> str:
    if "peak_anon_rss_gb" not in a or "peak_anon_rss_gb" not in b:
        return ""
    gb = b["peak_anon_rss_gb"] + (b["peak_anon_rss_gb"] - a["peak_anon_rss_gb"]) / (
        b["n"] - a["n"]) * (TEN_M - b["n"])
    return f", of it {gb:.1f} GiB anonymous (the rest: memory-mapped vectors)"


def exponent(a, b, key) -> float:
    """``e`` in ``t ~ N^e`` between two runs, for the figure ``key(run)``."""
    return math.log(key(b) / key(a)) / math.log(b["n"] / a["n"])


def growth_table(runs: list[dict]) -> str:
    """Markdown: one row per size, the exponents between consecutive sizes, 10M on paper."""
    runs = sorted(runs, key=lambda r: r["n"])
    rows = []
    for r in runs:
        i = r["knn_info"]
        when = f" (measured {r['measured_at']} by an earlier run)" if "measured_at" in r else ""
        rows.append(
            f"| {r['n']:,}{when} | {i['n_lists']:,} ({i.get('quantizer_levels', 1)}) | "
            f"{_knn_s(r):.0f} | {r['analysis_s'] - _knn_s(r):.0f} | **{r['analysis_s']:.0f}** | "
            f"{r['peak_rss_gb']:.2f} | {_anon(r)} | {r['graph_recall10_1000_rows']:.3f} | "
            f"{r['planted_copy_recall']:.3f} | {r['mislabel_precision']:.2f} / "
            f"{r['mislabel_recall']:.2f} | {graph_gflops(r):.0f} |")
    out = ["| vectors | cells (quantizer levels) | kNN graph (s) | other analyses (s) | all "
           "analyses (s) | peak RSS (GiB) | of it anonymous (GiB) | graph recall@10 (1,000 rows) | "
           "planted copies grouped | mislabels P / R | graph GFLOP/s |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    out += rows
    text = "\n".join(out) + "\n\n"
    fits = []
    for a, b in zip(runs, runs[1:]):
        fits.append(f"{a['n']:,} -> {b['n']:,}: all analyses N^{exponent(a, b, lambda r: r['analysis_s']):.2f}, "
                    f"kNN graph N^{exponent(a, b, _knn_s):.2f}, peak RSS N^"
                    f"{exponent(a, b, lambda r: r['peak_rss_gb']):.2f}")
    if fits:
        text += "Growth (time ~ N^e between consecutive sizes; goal e ≤ 1.2): " + "; ".join(fits) + ".\n\n"
    last = runs[-1]
    if last["n"] < TEN_M and len(runs) > 1:
        e = exponent(runs[-2], last, lambda r: r["analysis_s"])
        gb = last["peak_rss_gb"] + (runs[-1]["peak_rss_gb"] - runs[-2]["peak_rss_gb"]) / (
            last["n"] - runs[-2]["n"]) * (TEN_M - last["n"])
        text += (f"**Ten million, extrapolated (not measured)** from the two largest sizes: "
                 f"{last['analysis_s'] * (TEN_M / last['n']) ** e / 60:.0f} min for all analyses "
                 f"(N^{e:.2f}; goal ≤ 60 min) and {gb:.1f} GiB peak RSS (linear in N; goal ≤ 16 "
                 f"GiB){_anon_at_ten_m(runs[-2], last)}. Measure it with "
                 f"`VC_BENCH_SCALE_SIZES=3000000,10000000`.\n\n")
    elif last["n"] >= TEN_M:
        anon = (f", of it {last['peak_anon_rss_gb']:.1f} GiB anonymous (the rest: the "
                "memory-mapped vectors' file pages, which the system drops under pressure)"
                if "peak_anon_rss_gb" in last else "")
        anon += "" if "memory_limit" in last else " - measured without a memory limit"
        lim = last.get("memory_limit")
        fits = (f" It ran inside a memory cgroup limited to {lim['limit_gib']:g} GiB, which "
                f"charges the file cache of the memory-mapped vectors as well as the anonymous "
                f"memory (at most {lim['peak_gib']:.1f} GiB charged"
                + (f", the limit reached {lim['limit_hits']:,} times: the kernel then drops "
                   "file pages" if lim.get("limit_hits") else "") + ")."
                if lim else "")
        text += (f"**{last['n']:,} measured**: {last['analysis_s'] / 60:.0f} min for all "
                 f"analyses (goal ≤ 60 min), peak RSS {last['peak_rss_gb']:.1f} GiB{anon} "
                 f"(goal ≤ 16 GiB), graph recall@10 {last['graph_recall10_1000_rows']:.3f} "
                 f"(goal ≥ 0.95).{fits}\n\n")
    knn_share = _knn_s(last) / last["analysis_s"]
    text += (f"Where the time goes at {last['n']:,}: the kNN graph is {knn_share:.0%} of it, "
             f"float32 matrix products of {GRAPH_FLOPS} ({graph_gflops(last):.0f} GFLOP/s "
             "achieved here, with their top-k merges); above a million rows the cells stop "
             "growing (~1,000 rows each, found through a two-level quantizer), so the graph "
             "grows as N. Those products and merges are what a GPU would take over (faiss or "
             "torch blocks; not measured here: no GPU on this machine); the rest - reading the vectors, "
             "the per-analysis passes over the graph - is memory-bound and would not change.\n")
    if len(runs) > 1 and graph_gflops(last) < 0.85 * graph_gflops(runs[-2]):
        text += _slower(last, runs[-2])
    return text


def _slower(last, prev) -> str:
    """Why the graph ran slower at the largest size, from what the runs measured: the graph
    step's own peak RSS against the machine's memory, and whether the products were counted
    per cell."""
    import psutil

    ram = psutil.virtual_memory().total / 2 ** 30
    graph_rss = last.get("rss_gb", {}).get("knn graph", float("nan"))
    top = max(last.get("rss_gb", {"-": last["peak_rss_gb"]}).items(), key=lambda kv: kv[1])
    text = (f"\nAt {last['n']:,} the graph ran at {graph_gflops(last):.0f} GFLOP/s against "
            f"{graph_gflops(prev):.0f} at {prev['n']:,}"
            + ("" if all("products" in r["knn_info"] for r in (last, prev)) else
               " (a run that did not record its products per cell is counted as equal cells, "
               "so the two figures are not on one basis)")
            + f". Its step's peak RSS was {graph_rss:.1f} GiB on a {ram:.0f} GiB machine (the "
            f"run's peak, {last['peak_rss_gb']:.1f} GiB, came in step {top[0]}). ")
    faults = last.get("major_faults", {}).get("knn graph")
    if faults is not None:
        text += (f"During the graph the process took {faults:,} major page faults (pages read "
                 "back from disk). ")
        lim = last.get("memory_limit") or {}
        if lim.get("limit_hits"):
            text += (f"But the run was held at its {lim['limit_gib']:g} GiB memory limit: each "
                     "allocation at the limit first makes the kernel reclaim file cache (the "
                     f"limit was hit {lim['limit_hits']:,} times), which costs system time in "
                     "every step; in mislabels, whose own memory is largest, the vectors' pages "
                     f"were dropped and read back ({last['major_faults'].get('mislabels', 0):,} "
                     "major faults). The same size without the limit is the time without that "
                     "cost.\n")
        elif faults >= 0.01 * last["n"]:
            text += ("The memory-mapped vectors were paged out and read back during it, "
                     "which slows the row gathers (by how much is not separated here).\n")
        else:
            text += ("So the vectors stayed in memory: paging does not explain the slower "
                     "speed. The cost grows per product instead; the random row gathers from a "
                     "larger map and the merges into a larger result array are the candidates, "
                     "not measured one by one here.\n")
    elif graph_rss >= 0.85 * ram:
        text += ("The memory-mapped vectors and the analyses' own memory no longer fit "
                 "together, so the system pages the vectors out and back in (inferred from "
                 "the memory, page faults not counted).\n")
    else:
        text += ("The graph step fitted in memory, so paging does not explain the slower "
                 "speed. The remaining candidates are not measured here: cache and TLB misses "
                 "of the random row gathers from a larger map, and cells of unequal size when "
                 "their products were not counted.\n")
    return text


if __name__ == "__main__":
    got = [run_size(int(x)) for x in sys.argv[1:]]
    print(json.dumps(got, indent=1))
    print(growth_table(got))
