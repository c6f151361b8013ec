"""Reference values for ScipyTwoSampleTests: scipy 1.10 two-sample tests and the distributions behind them.

stdin:  {"cases": [{"kind": "samples", "a": [...], "b": [...], "tests": [{"kind": "ks", "method": "auto"}, ...]},
                   {"kind": "kstwo", "d": x, "n": n}, {"kind": "smirnov", "d": x, "n": n},
                   {"kind": "cvm_inf", "x": x}, {"kind": "kve", "x": x}]}
        test kinds: ks (method auto|exact|asymp), cvm (method auto|exact|asymptotic), anderson, energy, wasserstein.
stdout: {"scipy": version, "results": [...]}, one result per case: for "samples" a list with one entry per test,
        {"statistic": s, "pvalue": p} or {"error": "ExceptionName"}; for the others {"value": v} or {"error": ...}.
Non-finite numbers are written as the strings "nan", "inf", "-inf".
"""
import json
import math
import sys
import warnings

import numpy as np
import scipy
from scipy import special, stats
from scipy.stats import _hypotests

warnings.simplefilter("ignore")


def number(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def run(case):
    kind = case["kind"]
    if kind == "kstwo":
        return {"value": number(stats.kstwo.sf(case["d"], case["n"]))}
    if kind == "smirnov":
        return {"value": number(special.smirnov(case["n"], case["d"]))}
    if kind == "cvm_inf":
        return {"value": number(_hypotests._cdf_cvm_inf(case["x"]))}
    if kind == "kve":
        return {"value": number(special.kve(0.25, case["x"]))}
    raise KeyError(kind)


def run_test(test, a, b):
    kind = test["kind"]
    if kind == "ks":
        r = stats.ks_2samp(a, b, method=test.get("method", "auto"))
        return {"statistic": number(r.statistic), "pvalue": number(r.pvalue)}
    if kind == "cvm":
        r = stats.cramervonmises_2samp(a, b, method=test.get("method", "auto"))
        return {"statistic": number(r.statistic), "pvalue": number(r.pvalue)}
    if kind == "anderson":
        r = stats.anderson_ksamp([a, b], midrank=True)
        return {"statistic": number(r.statistic), "pvalue": number(r.significance_level)}
    if kind == "energy":
        return {"statistic": number(stats.energy_distance(a, b))}
    if kind == "wasserstein":
        return {"statistic": number(stats.wasserstein_distance(a, b))}
    raise KeyError(kind)


def safe(f, *args):
    try:
        return f(*args)
    except Exception as e:  # the C# side expects an ArgumentException where scipy raises
        return {"error": type(e).__name__}


def case_result(case):
    if case["kind"] != "samples":
        return safe(run, case)
    a = np.asarray(case["a"], dtype=float)
    b = np.asarray(case["b"], dtype=float)
    return [safe(run_test, test, a, b) for test in case["tests"]]


request = json.load(sys.stdin)
json.dump({"scipy": scipy.__version__, "results": [case_result(c) for c in request["cases"]]}, sys.stdout)
