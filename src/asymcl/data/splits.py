"""Scenario draws and stratified (optionally lesion-grouped) train/test splits.

Everything is a pure function of the candidates and a seed: candidates of each class are
taken in sorted id order and a single ``numpy.random.Generator`` (PCG64, seeded with
``seed``) is consumed class by class in ``classes`` order, so the same inputs and seed
always give the same draw, on any machine.

Counts per class for ``--ratio r_1:...:r_k --total N`` use the largest-remainder rule:
``n_c = floor(N r_c / sum r)``, and the ``N - sum n_c`` leftover images go to the classes
with the largest fractional parts (ties to the earlier class). For two classes this is
``n_maj = round_half_up(N maj / (maj + min))`` and ``n_min = N - n_maj``: 98:2 of 1000 gives
980/20.

Long-tailed counts (``--imbalance-factor IF --max-per-class n_max``, K classes in the given
order, the CIFAR-LT convention): ``n_k = round_half_up(n_max * IF^(-k / (K - 1)))`` for
``k = 0 .. K-1``, so the first class has ``n_max`` images and the last ``n_max / IF``
(10 classes, n_max 600, IF 100: 600, 360, 216, 129, 77, 46, 28, 17, 10, 6).

Splits (``split``). ``stratified`` (default): the test size per class is
``round_half_up(n_c * test_fraction)`` (980 -> 294, 20 -> 6 at 0.3); the rest is train.
``random``: the drawn images of all classes are pooled (in class order, each class in its
drawn order), permuted with the same generator, and the first
``round_half_up(N * test_fraction)`` go to test, as scikit-learn's ``train_test_split``
without ``stratify`` does; so the test set's class mix varies from seed to seed (at 98:2 of
1000: 6 minority test images on average, anywhere from about 1 to 12), which is what the
paper's published numbers imply (DESIGN.md section 3). A random split that leaves a class
without training or test images fails (at 98:2 that has probability below 0.1%). With lesion grouping, each class's lesions are shuffled and the first
``k`` lesions go to test, with ``k`` chosen so that their image count is closest to that
target (ties to fewer images), so no lesion is in both splits.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from asymcl.data.manifest import Row
from asymcl.errors import InputError


#: Train/test split methods (`make_subset`'s ``split``); the first is the default.
SPLIT_METHODS = ("stratified", "random")


class SplitError(InputError):
    """A scenario that cannot be drawn from the available images."""


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))


def parse_ratio(text: str, n_classes: int) -> list[float]:
    """``"98:2"`` -> ``[98.0, 2.0]``; one positive number per class."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise SplitError(f"ratio {text!r} must be numbers separated by ':', e.g. 98:2 or 50:30:20") from None
    if len(parts) != n_classes:
        raise SplitError(f"ratio {text!r} has {len(parts)} parts but there are {n_classes} classes")
    if any(not math.isfinite(p) or p <= 0 for p in parts):
        raise SplitError(f"ratio {text!r}: every part must be a positive number")
    return parts


def scenario_counts(total: int, ratio: list[float]) -> list[int]:
    """Images per class for ``total`` images in proportions ``ratio`` (largest remainder)."""
    if total <= 0:
        raise SplitError(f"total must be positive, got {total}")
    shares = [total * r / sum(ratio) for r in ratio]
    counts = [math.floor(s + 1e-9) for s in shares]
    order = sorted(range(len(ratio)), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def long_tail_counts(n_classes: int, max_per_class: int, imbalance_factor: float) -> list[int]:
    """Exponentially decaying class sizes ``round_half_up(n_max * IF^(-k/(K-1)))``."""
    if n_classes < 2:
        raise SplitError(f"a long-tailed scenario needs at least 2 classes, got {n_classes}")
    if not (isinstance(max_per_class, int) and max_per_class >= 1):
        raise SplitError(f"--max-per-class must be a positive integer, got {max_per_class!r}")
    if not (math.isfinite(imbalance_factor) and imbalance_factor >= 1):
        raise SplitError(f"--imbalance-factor must be a number >= 1 (largest / smallest class), got {imbalance_factor!r}")
    counts = [round_half_up(max_per_class * imbalance_factor ** (-k / (n_classes - 1))) for k in range(n_classes)]
    if counts[-1] < 1:
        raise SplitError(
            f"--max-per-class {max_per_class} / --imbalance-factor {imbalance_factor:g} leaves the "
            f"last class with {counts[-1]} images; raise --max-per-class"
        )
    return counts


@dataclass(frozen=True)
class Candidate:
    id: str
    label: str
    group: str = ""  # lesion id; empty = the image is its own group


def _id_key(image_id: str) -> tuple[int, int | str]:
    return (0, int(image_id)) if image_id.isdigit() else (1, image_id)


def draw(
    candidates: list[Candidate],
    classes: list[str],
    counts: list[int] | None,
    rng: np.random.Generator,
    source: str = "the raw data",
) -> dict[str, list[Candidate]]:
    """Draw ``counts[c]`` images of each class without replacement (all when ``counts`` is None)."""
    by_class: dict[str, list[Candidate]] = defaultdict(list)
    for cand in candidates:
        by_class[cand.label].append(cand)
    drawn: dict[str, list[Candidate]] = {}
    for i, label in enumerate(classes):
        pool = sorted(by_class.get(label, []), key=lambda c: _id_key(c.id))
        want = len(pool) if counts is None else counts[i]
        if want > len(pool):
            raise SplitError(
                f"class {label} has only {len(pool)} images available in {source}, but the "
                f"scenario asks for {want}; lower --total or change --ratio"
            )
        if want == 0 or not pool:
            raise SplitError(f"class {label} would get no images (available: {len(pool)}, asked: {want})")
        picked = rng.choice(len(pool), size=want, replace=False)
        drawn[label] = [pool[j] for j in picked]
    return drawn


def stratified_split(
    drawn: dict[str, list[Candidate]],
    test_fraction: float,
    rng: np.random.Generator,
    group_by_lesion: bool = False,
) -> list[Row]:
    """Assign every drawn image to train or test, stratified by class (see module doc)."""
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test fraction must lie strictly between 0 and 1, got {test_fraction}")
    rows: list[Row] = []
    for label, items in drawn.items():
        target = round_half_up(len(items) * test_fraction)
        if group_by_lesion:
            test_ids = _grouped_test_ids(items, target, rng)
        else:
            order = rng.permutation(len(items))
            test_ids = {items[j].id for j in order[:target]}
        rows.extend(Row(c.id, label, "test" if c.id in test_ids else "train") for c in items)
    return rows


def random_split(drawn: dict[str, list[Candidate]], test_fraction: float, rng: np.random.Generator) -> list[Row]:
    """Pool every drawn image and split them at random, not per class (see module doc)."""
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test fraction must lie strictly between 0 and 1, got {test_fraction}")
    pooled = [(label, c) for label, items in drawn.items() for c in items]
    target = round_half_up(len(pooled) * test_fraction)
    test_positions = set(rng.permutation(len(pooled))[:target].tolist())
    rows = [Row(c.id, label, "test" if i in test_positions else "train") for i, (label, c) in enumerate(pooled)]
    for label in drawn:
        for split in ("train", "test"):
            if not any(r.label == label and r.split == split for r in rows):
                raise SplitError(
                    f"the random split left class {label} with no {split} images "
                    f"({len(drawn[label])} drawn, test fraction {test_fraction}); use --split stratified, "
                    "a larger scenario, or another seed"
                )
    return rows


def _grouped_test_ids(items: list[Candidate], target: int, rng: np.random.Generator) -> set[str]:
    groups: dict[str, list[str]] = defaultdict(list)
    for c in items:
        groups[c.group or f"image:{c.id}"].append(c.id)
    keys = sorted(groups)
    order = [keys[j] for j in rng.permutation(len(keys))]
    sizes = np.cumsum([0] + [len(groups[k]) for k in order])
    k = int(np.argmin(np.abs(sizes - target)))  # first minimum: ties to fewer images
    return {image for key in order[:k] for image in groups[key]}


def check_lesion_labels(candidates: list[Candidate]) -> None:
    """A lesion must have one class, otherwise grouping cannot stratify by class."""
    seen: dict[str, str] = {}
    for c in candidates:
        if c.group and seen.setdefault(c.group, c.label) != c.label:
            raise SplitError(f"lesion {c.group} has images of classes {seen[c.group]} and {c.label}")


def make_subset(
    candidates: list[Candidate],
    classes: list[str],
    *,
    seed: int,
    ratio: list[float] | None = None,
    total: int | None = None,
    test_fraction: float = 0.3,
    group_by_lesion: bool = False,
    source: str = "the raw data",
    imbalance_factor: float | None = None,
    max_per_class: int | None = None,
    split: str = "stratified",
) -> list[Row]:
    """Draw a scenario and split it (``split``: stratified or random); returns unsorted manifest rows.

    The scenario is ``ratio`` + ``total``, or ``imbalance_factor`` + ``max_per_class``
    (long-tailed, see `long_tail_counts`), or neither (all images of the classes).
    """
    if (ratio is None) != (total is None):
        raise SplitError("give --ratio and --total together, or neither (then all images of the classes are used)")
    if (imbalance_factor is None) != (max_per_class is None):
        raise SplitError("give --imbalance-factor and --max-per-class together (a long-tailed scenario)")
    if imbalance_factor is not None and ratio is not None:
        raise SplitError("--imbalance-factor/--max-per-class and --ratio/--total are two ways to size a "
                         "scenario; give one of them")
    if split not in SPLIT_METHODS:
        raise SplitError(f"--split must be one of {list(SPLIT_METHODS)}, got {split!r}")
    if split == "random" and group_by_lesion:
        raise SplitError("--split random pools single images; it does not combine with --group-by-lesion")
    if group_by_lesion:
        missing = [c.id for c in candidates if c.label in classes and not c.group]
        if missing:
            raise SplitError(
                f"--group-by-lesion needs a lesion id for every image, but {len(missing)} have none "
                f"(e.g. {missing[:3]}); put HAM10000_metadata.csv next to the archives and rerun download"
            )
        check_lesion_labels(candidates)
    counts = scenario_counts(total, ratio) if ratio is not None and total is not None else None
    if imbalance_factor is not None and max_per_class is not None:
        counts = long_tail_counts(len(classes), max_per_class, imbalance_factor)
    rng = np.random.default_rng(seed)
    drawn = draw(candidates, classes, counts, rng, source)
    if split == "random":
        return random_split(drawn, test_fraction, rng)
    return stratified_split(drawn, test_fraction, rng, group_by_lesion)
