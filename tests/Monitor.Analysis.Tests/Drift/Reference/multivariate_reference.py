"""Multivariate drift definitions in numpy, as the reference the C# tests compare with (our own code).

mmd: alibi-detect MMDDrift's statistic (utils/pytorch/distance.py mmd2_from_kernel_matrix, kernel GaussianRBF with
sigma_median from utils/pytorch/kernels.py) in float64, with exact squared distances.
pca: NannyML's DataReconstructionDriftCalculator (mean imputation, sklearn StandardScaler, PCA(n_components=0.65),
DefaultChunker, StandardDeviationThreshold) written with np.linalg.eigh on the covariance (sklearn-equivalent math).
eigen: np.linalg.eigvalsh.
Input/output: JSON on stdin/stdout; rows are flat row-major lists with their dimension "d".
"""
import json
import sys

import numpy as np


def squared_distances(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def sigma_median(x):
    dist = squared_distances(x, x)
    n = x.shape[0]
    n_median = n + (np.prod(dist.shape) - n) // 2 - 1
    return float((0.5 * np.sort(dist.flatten())[int(n_median)]) ** 0.5)


def mmd(case):
    d = case["d"]
    x = np.asarray(case["ref"], dtype=np.float64).reshape(-1, d)
    y = np.asarray(case["cur"], dtype=np.float64).reshape(-1, d)
    sigma = case.get("sigma")
    if sigma is None:
        sigma = sigma_median(x)
    pooled = np.concatenate([x, y])
    kernel = np.exp(-squared_distances(pooled, pooled) / (2 * sigma**2))
    kernel = kernel - np.diag(np.diag(kernel))
    m = y.shape[0]
    n = x.shape[0]
    k_xx, k_yy, k_xy = kernel[:-m, :-m], kernel[-m:, -m:], kernel[-m:, :-m]
    mmd2 = k_xx.sum() / (n * (n - 1)) + k_yy.sum() / (m * (m - 1)) - 2.0 * k_xy.mean()
    return {"sigma": sigma, "mmd2": float(mmd2)}


def pca(case):
    d = case["d"]
    ref = np.asarray(case["ref"], dtype=np.float64).reshape(-1, d)
    n = ref.shape[0]
    impute = np.nanmean(ref, axis=0)

    def prepare(rows):
        rows = rows.copy()
        mask = np.isnan(rows)
        rows[mask] = np.take(impute, np.nonzero(mask)[1])
        return rows

    data = prepare(ref)
    mean = data.mean(axis=0)
    var = data.var(axis=0)
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    z = (data - mean) / scale
    pca_mean = z.mean(axis=0)
    cov = np.cov(z - pca_mean, rowvar=False, ddof=1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0, None)
    vectors = vectors[:, order]
    ratios = values / values.sum()
    k = int(np.searchsorted(np.cumsum(ratios), case.get("keep", 0.65), side="right") + 1)
    k = min(k, d)
    components = vectors[:, :k]

    def error(rows):
        zr = (prepare(rows) - mean) / scale
        reconstructed = (zr - pca_mean) @ components @ components.T + pca_mean
        return float(np.mean(np.linalg.norm(zr - reconstructed, axis=1)))

    chunk_size = n // case.get("chunks", 10)
    chunks = [ref[i:i + chunk_size] for i in range(0, n, chunk_size) if i + chunk_size - 1 < n]
    if n % chunk_size != 0:
        chunks.append(ref[chunk_size * (n // chunk_size):])
    reference_errors = [error(c) for c in chunks]
    centre = np.nanmean(reference_errors)
    spread = np.nanstd(reference_errors)
    lower = centre - 3 * spread
    upper = centre + 3 * spread
    current = [error(np.asarray(c, dtype=np.float64).reshape(-1, d)) for c in case["current"]]
    return {
        "components": k,
        "ratios": ratios.tolist(),
        "referenceErrors": reference_errors,
        "lower": None if lower <= 0 else float(lower),
        "upper": float(upper),
        "current": current,
    }


def eigen(case):
    d = case["d"]
    matrix = np.asarray(case["matrix"], dtype=np.float64).reshape(d, d)
    return {"values": np.linalg.eigvalsh(matrix)[::-1].tolist()}


def main():
    request = json.load(sys.stdin)
    json.dump({
        "mmd": [mmd(c) for c in request.get("mmd", [])],
        "pca": [pca(c) for c in request.get("pca", [])],
        "eigen": [eigen(c) for c in request.get("eigen", [])],
    }, sys.stdout)


main()
