"""The streams of river's documented drift examples and of its drift test suite, printed as JSON.

Our own code: it only rebuilds the input streams (Python's `random` and numpy's legacy seeding cannot be reproduced
in C#); the detectors under test are the C# ones. Input on stdin is ignored (PythonReference sends a document).

- doc_a: river's ADWIN and PageHinkley docstrings: random.Random(12345), 1,000 x choices([0, 1]) then
  1,000 x choices(range(4, 8)).
- doc_b: river's DDM, EDDM, HDDM_A and HDDM_W docstrings: random.Random(42), 1,000 x choices([0, 1]) then 1,000 x
  choices([0, 1], weights=[0.3, 0.7]).
- adwin_segments: river/drift/test_adwin_regression.py test_multiple_drifts: random.Random(42), four segments.
- suite_1, suite_2, suite_3: river/drift/test_drift_detectors.py data_stream_1..3 (numpy seed 12345 each).
"""

import json
import random
import sys

import numpy as np

json.load(sys.stdin)

streams = {}

rng = random.Random(12345)
streams["doc_a"] = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)

rng = random.Random(42)
doc_b = rng.choices([0, 1], k=1000)
streams["doc_b"] = doc_b + rng.choices([0, 1], k=1000, weights=[0.3, 0.7])

rng = random.Random(42)
streams["adwin_segments"] = (
    rng.choices([0, 1], k=1000)
    + rng.choices(range(4, 8), k=1000)
    + rng.choices([0, 1], k=1000)
    + rng.choices(range(4, 8), k=1000)
)

np.random.seed(12345)
streams["suite_1"] = np.concatenate((np.random.randint(2, size=1000), np.random.randint(8, size=1000)))

np.random.seed(12345)
streams["suite_2"] = np.concatenate(
    [[np.random.binomial(1, 0.2) for _ in range(1000)], [np.random.binomial(1, 0.8) for _ in range(1000)]]
).astype(int)

np.random.seed(12345)
streams["suite_3"] = np.concatenate(
    (
        np.random.normal(0.0, 0.1, 500) > 0,
        np.random.normal(0.25, 0.1, 500) > 0,
        np.random.normal(0.0, 0.1, 500) > 0,
        np.random.normal(0.25, 0.1, 500) > 0,
    )
).astype(int)

json.dump({name: [float(x) for x in values] for name, values in streams.items()}, sys.stdout)
