"""Python's random.Random(seed).sample(range(n), k) for each requested case, printed as JSON (our own few lines).

KSWIN draws its reference sample with this call; the C# PythonRandom must draw the same indices.
Input: {"cases": [{"seed": int, "n": int, "k": int, "draws": int}, ...]} - each case draws `draws` samples in a row.
"""

import json
import random
import sys

request = json.load(sys.stdin)
out = []
for case in request["cases"]:
    rng = random.Random(case["seed"])
    out.append([rng.sample(range(case["n"]), case["k"]) for _ in range(case["draws"])])
json.dump(out, sys.stdout)
