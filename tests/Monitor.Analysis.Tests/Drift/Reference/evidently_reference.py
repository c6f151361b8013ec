"""Evidently's (0.6-0.7) drift tests written out in numpy/scipy, as the reference the C# tests compare with.

Our own code, from the semantics of evidently/legacy/calculations/stattests/*.py and utils.py (get_binned_data),
without pandas: value bins are taken in sorted order (Evidently iterates a Python set; only the summation order
differs). Input (stdin): {"cases": [{"kind": "num"|"cat", "ref": [...], "cur": [...]}, ...]}. Output (stdout):
{"results": [{"psi": [stat, p], "kl": ..., ...}, ...]} with p null for distances and non-finite numbers as strings.
"""
import json
import math
import sys
import warnings

import numpy as np
from scipy import stats
from scipy.spatial import distance


def keys_of(ref, cur):
    return sorted(set(ref.tolist()) | set(cur.tolist()))


def counts_of(values, keys):
    counts = dict.fromkeys(keys, 0)
    for v in values.tolist():
        counts[v] += 1
    return [counts[k] for k in keys]


def binned(ref, cur, kind, feel_zeroes=True):
    if kind == "num" and len(set(ref.tolist())) > 20:
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        rp = np.histogram(ref, bins)[0] / len(ref)
        cp = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = keys_of(ref, cur)
        rp = np.array([c / len(ref) for c in counts_of(ref, keys)])
        cp = np.array([c / len(cur) for c in counts_of(cur, keys)])
    if feel_zeroes:
        for p in (rp, cp):
            smallest = min(p[p != 0])
            np.place(p, p == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return rp, cp


def psi(ref, cur, kind):
    rp, cp = binned(ref, cur, kind)
    return float(np.sum((rp - cp) * np.log(rp / cp))), None


def kl(ref, cur, kind):
    rp, cp = binned(ref, cur, kind)
    return float(stats.entropy(rp, cp)), None


def jensenshannon(ref, cur, kind):
    rp, cp = binned(ref, cur, kind, feel_zeroes=False)
    return float(distance.jensenshannon(rp, cp)), None


def hellinger(ref, cur, kind):
    keys = keys_of(ref, cur)
    total = 0.0
    if kind == "cat":
        rc, cc = counts_of(ref, keys), counts_of(cur, keys)
        for a, b in zip(rc, cc):
            total += math.sqrt(float(a / len(ref)) * float(b / len(cur)))
    else:
        bins = np.histogram_bin_edges(keys, bins="sturges")
        h1 = np.histogram(ref, bins=bins, density=True)[0]
        h2 = np.histogram(cur, bins=bins, density=True)[0]
        width = (max(bins) - min(bins)) / (len(bins) - 1)
        for a, b in zip(h1, h2):
            total += math.sqrt(float(a) * float(b)) * width
    total = np.clip(total, 0, 1)
    return math.sqrt(1 - total), None


def chisquare(ref, cur, kind):
    keys = keys_of(ref, cur)
    k_norm = cur.shape[0] / ref.shape[0]
    f_exp = [c * k_norm for c in counts_of(ref, keys)]
    f_obs = counts_of(cur, keys)
    result = stats.chisquare(f_obs, f_exp)
    return float(result[0]), float(result[1])


def z(ref, cur, kind):
    if len(set(ref.tolist())) == 1 and len(set(cur.tolist())) == 1 and ref[0] == cur[0]:
        return 0.0, 1.0
    key = keys_of(ref, cur)[0]
    a = [0 if x == key else 1 for x in ref.tolist()]
    b = [0 if x == key else 1 for x in cur.tolist()]
    n1, n2 = len(a), len(b)
    p1 = float(sum(a)) / n1
    p2 = float(sum(b)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    statistic = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(statistic), float(2 * (1 - stats.norm.cdf(np.abs(statistic))))


def wasserstein_norm(ref, cur, kind):
    norm = max(float(np.std(ref)), 0.001)
    return float(stats.wasserstein_distance(ref, cur) / norm), None


TESTS = {
    "psi": psi,
    "kl": kl,
    "jensenshannon": jensenshannon,
    "hellinger": hellinger,
    "chisquare": chisquare,
    "z": z,
    "wasserstein-norm": wasserstein_norm,
}


def encode(x):
    if x is None:
        return None
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def main():
    warnings.simplefilter("ignore")
    request = json.load(sys.stdin)
    results = []
    for case in request["cases"]:
        ref = np.asarray(case["ref"], dtype=np.float64)
        cur = np.asarray(case["cur"], dtype=np.float64)
        entry = {}
        for name, test in TESTS.items():
            if name == "wasserstein-norm" and case["kind"] != "num":
                continue
            statistic, p = test(ref, cur, case["kind"])
            entry[name] = [encode(statistic), encode(p)]
        results.append(entry)
    json.dump({"results": results}, sys.stdout)


main()
