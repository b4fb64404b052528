#!/usr/bin/env python3
"""Latency CDF of peerspool vs the naive baseline as a self-contained SVG
(no matplotlib). Reads DIR/latency-{peerspool,baseline}.txt (one ms value
a line), writes DIR/latency-cdf.svg.  Usage: plot.py DIR"""
import math
import os
import sys

W, H = 760, 420
L, R, T, B = 70, 20, 40, 60


def load(path):
    try:
        with open(path) as f:
            return sorted(float(x) for x in f if x.strip())
    except OSError:
        return []


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    series = [("peerspool", "#1f77b4", load(os.path.join(d, "latency-peerspool.txt"))),
              ("naive baseline", "#d62728", load(os.path.join(d, "latency-baseline.txt")))]
    series = [s for s in series if s[2]]
    if not series:
        print("plot.py: no latency samples in", d, file=sys.stderr)
        return 0
    lo = max(0.1, min(s[2][0] for s in series))
    hi = max(s[2][-1] for s in series)
    x0, x1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if x1 == x0:
        x1 += 1

    def px(v):
        return L + (math.log10(max(v, 10 ** x0)) - x0) / (x1 - x0) * (W - L - R)

    def py(q):
        return T + (1 - q) * (H - T - B)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W/2}" y="22" text-anchor="middle" font-size="15">Live delivery latency, rename → submitted to the peer (CDF)</text>']
    for e in range(x0, x1 + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if v < 10 ** x0 or v > 10 ** x1:
                continue
            x = px(v)
            out.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H-B}" stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{H-B+16}" text-anchor="middle">{v:g}</text>')
    for q in (0, 0.25, 0.5, 0.75, 0.9, 0.99, 1):
        y = py(q)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W-R}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L-6}" y="{y+4:.1f}" text-anchor="end">{q:g}</text>')
    out.append(f'<text x="{(L+W-R)/2}" y="{H-20}" text-anchor="middle">milliseconds (log scale)</text>')
    out.append(f'<text x="18" y="{(T+H-B)/2}" text-anchor="middle" transform="rotate(-90 18 {(T+H-B)/2})">fraction of tasks</text>')
    for i, (name, color, v) in enumerate(series):
        n = len(v)
        pts = [f"{px(v[0]):.1f},{py(0):.1f}"]
        for j, x in enumerate(v):
            pts.append(f"{px(x):.1f},{py(j / n):.1f}")
            pts.append(f"{px(x):.1f},{py((j + 1) / n):.1f}")
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>')
        p50 = v[max(0, math.ceil(0.5 * n) - 1)]
        p99 = v[max(0, math.ceil(0.99 * n) - 1)]
        ly = T + 18 + i * 18
        out.append(f'<line x1="{L+12}" y1="{ly-4}" x2="{L+36}" y2="{ly-4}" stroke="{color}" stroke-width="3"/>')
        out.append(f'<text x="{L+42}" y="{ly}">{name}: n={n}, p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {v[-1]:.2f} ms</text>')
    out.append('</svg>')
    path = os.path.join(d, "latency-cdf.svg")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print("plot.py: wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
