"""Figures of the ablations: 2-D projections of stage-1 test embeddings, and the loss
diagnostics over training.

Embeddings (``embeddings.npz`` from ``asymcl train --save-embeddings``) are projected to two
dimensions by PCA (scikit-learn, exact SVD: deterministic, and cheap). PCA keeps linear
structure, which is what the stage-2 linear head can use; it is fitted per panel, so axes
are not comparable between panels (the caption says so). The sign of each component is
fixed (largest-magnitude loading positive on the first sample, scikit-learn's
``svd_flip``), so a rerun draws the same picture.

Diagnostics come from the per-epoch means in ``metrics.json`` (``stage1.epochs[*].diagnostics``):
the fraction of anchors without a positive in their batch, with exactly one, and the
eta-term and positive-term of the loss with their ratio (the effective strength of eta).
"""

from __future__ import annotations

from asymcl.errors import InputError

import json
from pathlib import Path
from typing import Sequence

import numpy as np

SPACES = ("projection", "encoder")


def load_embeddings(path: str | Path, space: str = "projection") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features [n, d], labels [n], class names) from an ``embeddings.npz``."""
    if space not in SPACES:
        raise InputError(f"space must be one of {SPACES}, got {space!r}")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found: train the run with --save-embeddings")
    with np.load(path) as z:
        missing = [k for k in (space, "labels", "classes") if k not in z.files]
        if missing:
            raise InputError(f"{path}: missing array(s) {missing}; expected an asymcl embeddings.npz")
        return z[space].astype(np.float64), z["labels"].astype(np.int64), [str(c) for c in z["classes"]]


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of ``features`` and their explained-variance ratios."""
    from sklearn.decomposition import PCA

    if features.ndim != 2 or features.shape[0] < 2:
        raise InputError(f"need features [n >= 2, d], got {features.shape}")
    k = min(2, features.shape[1], features.shape[0])
    pca = PCA(n_components=k, svd_solver="full")
    coords = pca.fit_transform(features)
    if k < 2:  # pad a degenerate case to two columns
        coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - k))])
    return coords, pca.explained_variance_ratio_


def embedding_figure(panels: Sequence[tuple[str, str | Path]], outs: Sequence[str | Path],
                     space: str = "projection", columns: int | None = None) -> None:
    """One scatter panel per (title, embeddings.npz), coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        raise InputError("no embeddings given")
    columns = columns or min(len(panels), 2)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    for ax, (title, path) in zip(axes.flat, panels):
        feats, labels, classes = load_embeddings(path, space)
        coords, ratio = pca_2d(feats)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for k, name in enumerate(classes):
            mask = labels == k
            if mask.any():
                ax.scatter(coords[mask, 0], coords[mask, 1], s=8, alpha=0.7, color=cmap(k % cmap.N),
                           label=f"{name} (n={int(mask.sum())})", linewidths=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
        ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)" if len(ratio) > 1 else "PC2")
        ax.legend(fontsize=6, markerscale=1.5, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"Stage-1 test embeddings ({space}), PCA per panel", fontsize=10)
    fig.tight_layout()
    _save(fig, outs)


DIAGNOSTICS = (
    ("frac_no_positive", "anchors without a positive"),
    ("frac_one_positive", "anchors with one positive"),
    ("eta_to_positive", "eta-term / positive-term"),
)


def epoch_diagnostics(metrics_path: str | Path) -> dict[str, list[float]]:
    """Per-epoch diagnostics of one run: key -> values over epochs (``epoch`` included)."""
    m = json.loads(Path(metrics_path).read_text())
    epochs = m.get("stage1", {}).get("epochs", [])
    out: dict[str, list[float]] = {"epoch": [e["epoch"] for e in epochs]}
    for e in epochs:
        for key, value in (e.get("diagnostics") or {}).items():
            out.setdefault(key, []).append(value)
    return out


def diagnostics_figure(series: Sequence[tuple[str, Sequence[str | Path]]], outs: Sequence[str | Path]) -> None:
    """Diagnostics over stage-1 epochs: one line per (label, runs), mean over the runs (seeds)
    with a min-max band; one panel per diagnostic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(DIAGNOSTICS), figsize=(4.2 * len(DIAGNOSTICS), 3.4), squeeze=False)
    for label, paths in series:
        runs = [epoch_diagnostics(p) for p in paths]
        for ax, (key, title) in zip(axes.flat, DIAGNOSTICS):
            values = [r[key] for r in runs if key in r and r[key]]
            if not values:
                continue
            n = min(len(v) for v in values)
            arr = np.array([v[:n] for v in values], dtype=float)
            x = np.arange(1, n + 1)
            (line,) = ax.plot(x, arr.mean(0), marker="o", ms=3, label=f"{label} (n={len(values)})")
            if len(values) > 1:
                ax.fill_between(x, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.2)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("stage-1 epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("Per-batch loss diagnostics, epoch means (band: min-max over seeds)", fontsize=10)
    fig.tight_layout()
    _save(fig, outs)


def _save(fig, outs: Sequence[str | Path]) -> None:
    import matplotlib.pyplot as plt

    from asymcl.io import atomic_path

    for out in outs:
        out = Path(out)
        with atomic_path(out) as tmp:
            # metadata without dates: the same data give the same bytes
            fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=150,
                        metadata={"CreationDate": None} if out.suffix == ".pdf" else None)
    plt.close(fig)


def series_from_args(items: Sequence[Sequence[str]]) -> list[tuple[str, list[str]]]:
    """``--series LABEL METRICS...`` groups as (label, metrics files); each file must exist."""
    series = []
    for item in items:
        if len(item) < 2:
            raise InputError(f"--series {list(item)}: give a label and at least one metrics.json")
        missing = [p for p in item[1:] if not Path(p).is_file()]
        if missing:
            raise InputError(f"--series {item[0]!r}: {missing[0]} does not exist")
        series.append((item[0], list(item[1:])))
    return series
