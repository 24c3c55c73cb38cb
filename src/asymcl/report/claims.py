"""The paper's claims about Fashion-MNIST, tested on our runs: a verdict per claim.

A *claim* is data (`PAPER_CLAIMS`, or a YAML/JSON list of the same mappings given to
``asymcl claims --claims FILE``)::

    id: acl-uwa-strong-imbalance          # unique
    text: "ACL beats CL in UWA ..."       # one line, as the paper says it
    source: "Sec. 5.3, Table 1"           # where the paper says it (optional)
    table: table1                         # published table; its family supplies the runs
    metric: uwa                           # accuracy | uwa (a runs.csv column)
    direction: greater                    # greater | less | not_greater | no_difference
    cell: paper_best                      # {eta: 300, gamma: 0} or paper_best
    against: {eta: 0, gamma: 0}           # optional; default the family's baseline (CL)
    scenarios: ["90:10", "95:5"]          # or `scenario: "90:10"`
    tests: [{...}, ...]                   # optional: per-test overrides of the keys above

A claim expands into one *test* per (entry of ``tests``, scenario). ``cell: paper_best``
is the paper's best cell of that table, scenario and metric other than ``against`` (ties:
the first in the family's cell order): a claim that "the best eta is X" is tested as the
paper's best cell against CL, and "CL is best" as the paper's runner-up being *below* CL.

Each test is a paired comparison over the seeds both cells have (same seed, same data
split), d_s = x_cell,s - x_against,s, by `asymcl.report.stats.paired_difference`: mean
difference, 95% t interval, two-sided paired t p value. The p values of all tests in the
table form one family of comparisons and are adjusted by Holm's step-down method (`holm`);
with alpha = 0.05 a test's verdict is

- greater:        holds if p_holm < alpha and mean > 0; contradicted if p_holm < alpha and mean < 0
- less:           the mirror image
- not_greater:    contradicted if p_holm < alpha and mean > 0; holds if p_holm < alpha and mean < 0
- no_difference:  contradicted if p_holm < alpha; never holds (a t test cannot show equality)

and ``not resolved`` otherwise (also when a test has < 2 paired seeds or no runs). A claim
holds when all its tests hold, is contradicted when any test is, and is not resolved
otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asymcl.errors import InputError
from asymcl.report.fit import family_runs, ratio_key, scenario_key
from asymcl.report.stats import paired_difference
from asymcl.report.tables import metric_label

ALPHA = 0.05
DIRECTIONS = ("greater", "less", "not_greater", "no_difference")
HOLDS, CONTRADICTED, NOT_RESOLVED = "holds", "contradicted", "not resolved"
CLAIM_KEYS = {"id", "text", "source", "table", "metric", "direction", "cell", "against",
              "scenario", "scenarios", "tests"}
TEST_KEYS = CLAIM_KEYS - {"id", "text", "source", "tests"}

CLAIM_COLUMNS = ["claim", "text", "claim_verdict", "test", "family", "table", "scenario",
                 "metric", "direction", "cell", "against", "tested_as", "paper_cell",
                 "paper_against", "paper_diff", "n", "mean_diff", "ci_low", "ci_high",
                 "p_value", "p_holm", "verdict"]

_T = "table1"
_U = "table2"
# The FMNIST claims of the paper (Sec. 5.3, abstract, conclusions), each as its tables
# support it. Not listed: "AFCL beats FCL" (no FMNIST cell has eta > 0 and gamma > 0).
PAPER_CLAIMS: list[dict[str, Any]] = [
    {
        "id": "acl-uwa-strong-imbalance",
        "text": "ACL (tuned eta) beats CL in UWA under strong imbalance (90:10, 95:5, 98:2)",
        "source": "abstract, conclusions; Table 1",
        "table": _T, "metric": "uwa", "direction": "greater", "cell": "paper_best",
        "scenarios": ["90:10", "95:5", "98:2"],
    },
    {
        "id": "acl-accuracy-eta-grows",
        "text": "The accuracy-maximising eta grows from 0 at 60:40 to 300 at 90:10",
        "source": "Sec. 5.3; Table 1",
        "table": _T, "metric": "accuracy",
        "tests": [
            {"scenario": "60:40", "cell": "paper_best", "direction": "less"},
            {"scenario": "90:10", "cell": {"eta": 300, "gamma": 0}, "direction": "greater"},
        ],
    },
    {
        "id": "fcl-uwa-moderate-imbalance",
        "text": "From 70:30 to 90:10 the best gamma is > 0: FCL (tuned gamma) beats CL in UWA",
        "source": "Sec. 5.3; Table 2",
        "table": _U, "metric": "uwa", "direction": "greater", "cell": "paper_best",
        "scenarios": ["70:30", "75:25", "80:20", "85:15", "90:10"],
    },
    {
        "id": "fcl-accuracy-moderate-imbalance",
        "text": "From 70:30 to 90:10 the best gamma is > 0: FCL (tuned gamma) beats CL in accuracy",
        "source": "Sec. 5.3; Table 2",
        "table": _U, "metric": "accuracy", "direction": "greater", "cell": "paper_best",
        "scenarios": ["70:30", "75:25", "80:20", "85:15", "90:10"],
    },
    {
        "id": "balanced-cl-best-accuracy",
        "text": "At 50:50 CL (gamma = 0) has the best accuracy of Table 2",
        "source": "Sec. 5.3; Table 2",
        "table": _U, "metric": "accuracy", "direction": "less", "cell": "paper_best",
        "scenarios": ["50:50"],
    },
    {
        "id": "balanced-no-gain",
        "text": "At 50:50 neither asymmetry nor focality helps: no tuned eta or gamma beats CL",
        "source": "Sec. 5.3; Tables 1-2",
        "direction": "not_greater", "cell": "paper_best", "scenarios": ["50:50"],
        "tests": [
            {"table": _T, "metric": "accuracy"},
            {"table": _T, "metric": "uwa"},
            {"table": _U, "metric": "uwa"},
        ],
    },
    {
        "id": "gamma2-accuracy-not-uwa",
        "text": "At 90:10 gamma = 2 gives Table 2's best accuracy but a poorer UWA than gamma = 7",
        "source": "Sec. 5.4; Table 2",
        "table": _U, "scenarios": ["90:10"], "cell": {"eta": 0, "gamma": 2},
        "tests": [
            {"metric": "accuracy", "direction": "greater"},
            {"metric": "uwa", "direction": "less", "against": {"eta": 0, "gamma": 7}},
        ],
    },
]


# ----------------------------------------------------------------------------- statistics


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment of the finite p values (NaN stays NaN, m counts finite ones).

    With the m finite p values sorted, p_(1) <= ... <= p_(m):
        p_holm_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j))
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out.tolist()


def verdict(direction: str, mean_diff: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    """A test's label from its direction, mean difference and adjusted p (see module)."""
    if not (math.isfinite(p_adjusted) and p_adjusted < alpha and math.isfinite(mean_diff)):
        return NOT_RESOLVED
    up = mean_diff > 0
    if direction == "greater":
        return HOLDS if up else CONTRADICTED
    if direction == "less":
        return CONTRADICTED if up else HOLDS
    if direction == "not_greater":
        return CONTRADICTED if up else HOLDS
    if direction == "no_difference":
        return CONTRADICTED
    raise ValueError(direction)


def claim_verdict(verdicts: list[str]) -> str:
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    if any(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    return NOT_RESOLVED


# ----------------------------------------------------------------------------- claim specs


def load_claims(path: str | Path) -> list[dict]:
    """A YAML (or JSON) list of claim mappings, checked by `check_claims`."""
    import yaml

    path = Path(path)
    try:
        claims = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; expected a YAML list of claims") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path} is not valid YAML ({err})") from None
    check_claims(claims, str(path))
    return claims


def check_claims(claims: Any, where: str = "claims") -> None:
    """Every claim has an id, text and complete tests with known keys and values."""
    if not isinstance(claims, list) or not claims:
        raise InputError(f"{where}: expected a non-empty list of claims")
    seen = set()
    for i, claim in enumerate(claims):
        at = f"{where}[{i}]"
        if not isinstance(claim, dict):
            raise InputError(f"{at}: expected a mapping with id, text, table, metric, direction, cell, scenarios")
        for key in ("id", "text"):
            if not claim.get(key):
                raise InputError(f"{at}: missing '{key}'")
        at = f"{where}: claim {claim['id']!r}"
        if claim["id"] in seen:
            raise InputError(f"{at}: the id is used twice")
        seen.add(claim["id"])
        unknown = sorted(set(claim) - CLAIM_KEYS)
        if unknown:
            raise InputError(f"{at}: unknown key(s) {unknown}; allowed: {sorted(CLAIM_KEYS)}")
        for test in expand_claim(claim):
            for key in ("table", "metric", "direction", "cell", "scenario"):
                if test.get(key) in (None, ""):
                    raise InputError(f"{at}: a test has no '{key}' (give it on the claim or in its tests)")
            if not isinstance(test["scenario"], str):
                raise InputError(f"{at}: scenario {test['scenario']!r} is not text; quote ratios "
                                 f"in YAML (\"50:50\"), which otherwise reads them as numbers")
            if test["direction"] not in DIRECTIONS:
                raise InputError(f"{at}: direction {test['direction']!r}; expected one of {', '.join(DIRECTIONS)}")
            for key in ("cell", "against"):
                value = test.get(key)
                if value is None or value == "paper_best" and key == "cell":
                    continue
                if not (isinstance(value, dict) and {"eta", "gamma"} <= set(value)):
                    raise InputError(f"{at}: {key} {value!r}; expected {{eta: E, gamma: G}}"
                                     + (" or paper_best" if key == "cell" else ""))


def expand_claim(claim: dict) -> list[dict]:
    """One dict per test: claim keys, overridden by a ``tests`` entry, one per scenario."""
    base = {k: v for k, v in claim.items() if k in TEST_KEYS}
    out = []
    for entry in claim.get("tests") or [{}]:
        if not isinstance(entry, dict) or set(entry) - TEST_KEYS:
            raise InputError(f"claim {claim.get('id')!r}: a tests entry may only set {sorted(TEST_KEYS)}")
        merged = {**base, **entry}
        if "scenario" in entry:
            merged.pop("scenarios", None)
        scenarios = merged.pop("scenarios", None) or [merged.get("scenario")]
        for scenario in scenarios:
            out.append({**merged, "scenario": scenario})
    return out


# ----------------------------------------------------------------------------- resolution


def family_for_table(spec: dict, table: str, chosen: dict[str, str] | None = None) -> dict | None:
    """The family whose runs test claims about ``table``: ``chosen[table]`` if given, else
    the family named ``table``, else the only family with ``paper: table``; None if none."""
    experiments = spec["experiments"]
    if chosen and table in chosen:
        name = chosen[table]
        if name not in experiments:
            raise InputError(f"--family {table}={name}: no family {name!r} in experiments.json "
                             f"(has: {', '.join(experiments)})")
        return experiments[name]
    if table in experiments and experiments[table].get("paper") == table:
        return experiments[table]
    candidates = [e for e in experiments.values() if e.get("paper") == table]
    if len(candidates) > 1:
        raise InputError(
            f"several families reproduce {table} ({', '.join(e['name'] for e in candidates)}); "
            f"choose one with --family {table}=NAME"
        )
    return candidates[0] if candidates else None


def _same(cell: dict, eta: float, gamma: float) -> bool:
    return math.isclose(float(cell["eta"]), float(eta)) and math.isclose(float(cell["gamma"]), float(gamma))


def _find_cell(exp: dict, want: dict) -> dict | None:
    found = [c for c in exp["cells"] if _same(c, want["eta"], want["gamma"])]
    if len(found) > 1:
        raise InputError(f"family {exp['name']!r} has several cells with eta={want['eta']}, "
                         f"gamma={want['gamma']} ({', '.join(c['id'] for c in found)}); a claim cannot pick one")
    return found[0] if found else None


def _paper_value(paper: pd.DataFrame, table: str, scenario: str, cell: dict, metric: str) -> float:
    rows = paper[(paper["table"] == table) & (paper["scenario"].map(ratio_key) == scenario)
                 & (paper["metric"] == metric)]
    rows = rows[[_same(r, cell["eta"], cell["gamma"]) for r in rows.to_dict("records")]]
    return float(rows["value"].iloc[0]) if len(rows) else math.nan


def _paper_best(exp: dict, paper: pd.DataFrame, table: str, scenario: str, metric: str,
                against: dict) -> dict | None:
    """The family's cell with the highest published value other than ``against`` (certain
    published cells only; ties: the first in the family's cell order)."""
    rows = paper[(paper["table"] == table) & (paper["scenario"].map(ratio_key) == scenario)
                 & (paper["metric"] == metric) & ~paper["uncertain"]]
    best, best_value = None, -math.inf
    for cell in exp["cells"]:
        if _same(cell, against["eta"], against["gamma"]):
            continue
        values = [r["value"] for r in rows.to_dict("records") if _same(r, cell["eta"], cell["gamma"])]
        if values and values[0] > best_value:
            best, best_value = cell, values[0]
    return best


def _describe(cell: dict) -> str:
    eta, gamma = float(cell["eta"]), float(cell["gamma"])
    if eta == 0 and gamma == 0:
        return "CL"
    return f"eta={eta:g}, gamma={gamma:g}"


# ----------------------------------------------------------------------------- evaluation


def evaluate_claims(claims: list[dict], spec: dict, runs: pd.DataFrame, paper: pd.DataFrame,
                    families: dict[str, str] | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per test (columns `CLAIM_COLUMNS`), Holm-adjusted over all tests."""
    check_claims(claims)
    rows = []
    for claim in claims:
        for k, test in enumerate(expand_claim(claim)):
            rows.append({"claim": claim["id"], "text": claim["text"], "test": k + 1,
                         **_run_test(test, spec, runs, paper, families)})
    frame = pd.DataFrame(rows)
    frame["p_holm"] = holm(frame["p_value"].tolist())
    frame["verdict"] = [verdict(r.direction, r.mean_diff, r.p_holm, alpha)
                        for r in frame.itertuples(index=False)]
    frame["claim_verdict"] = frame.groupby("claim", sort=False)["verdict"].transform(
        lambda v: claim_verdict(list(v)))
    return frame[CLAIM_COLUMNS]


def _run_test(test: dict, spec: dict, runs: pd.DataFrame, paper: pd.DataFrame,
              families: dict[str, str] | None) -> dict:
    table, metric, direction = test["table"], test["metric"], test["direction"]
    scenario = ratio_key(test["scenario"])
    row = {"family": "", "table": table, "scenario": str(test["scenario"]), "metric": metric,
           "direction": direction, "cell": "", "against": "", "tested_as": "",
           "paper_cell": math.nan, "paper_against": math.nan, "paper_diff": math.nan,
           "n": 0, "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p_value": math.nan}
    exp = family_for_table(spec, table, families)
    if exp is None:
        row["tested_as"] = f"not tested: no family reproduces {table}"
        return row
    row["family"] = exp["name"]
    base = test.get("against")
    if base is None:
        base_cell = next((c for c in exp["cells"] if c["id"] == exp.get("baseline")), None)
        if base_cell is None:
            row["tested_as"] = f"not tested: family {exp['name']} has no baseline"
            return row
    else:
        base_cell = _find_cell(exp, base)
        if base_cell is None:
            row["tested_as"] = f"not tested: family {exp['name']} has no cell {_describe(base)}"
            return row
    scenarios = [s for s in exp["scenarios"] if scenario_key(s) == scenario]
    if len(scenarios) != 1:
        row["tested_as"] = (f"not tested: family {exp['name']} has "
                            f"{'no' if not scenarios else 'several'} scenario(s) {test['scenario']}")
        return row
    sc = scenarios[0]
    if test["cell"] == "paper_best":
        cell = _paper_best(exp, paper, table, scenario, metric, base_cell)
        how = "the paper's best cell other than {against} ({cell})"
    else:
        cell = _find_cell(exp, test["cell"])
        how = "{cell}"
    if cell is None:
        row["tested_as"] = f"not tested: family {exp['name']} has no matching cell for {test['cell']}"
        return row
    row["cell"], row["against"] = cell["id"], base_cell["id"]
    p_cell = _paper_value(paper, table, scenario, cell, metric)
    p_base = _paper_value(paper, table, scenario, base_cell, metric)
    row.update(paper_cell=p_cell, paper_against=p_base, paper_diff=p_cell - p_base)
    ours = family_runs(exp, runs)
    ours = ours[ours["scenario"] == sc["id"]]

    def by_seed(cell_id: str) -> dict:
        g = ours[ours["cell"] == cell_id]
        return dict(zip(g["seed"], pd.to_numeric(g[metric], errors="coerce")))

    paired = paired_difference(by_seed(cell["id"]), by_seed(base_cell["id"]))
    row.update(n=paired.n, mean_diff=paired.mean_diff, ci_low=paired.ci_low,
               ci_high=paired.ci_high, p_value=paired.p_value)
    what = how.format(cell=_describe(cell), against=_describe(base_cell))
    row["tested_as"] = (f"{table} {sc['label']} {metric_label(metric)}: {what} minus "
                        f"{_describe(base_cell)}, paired over seeds; expected {direction}")
    return row


# ----------------------------------------------------------------------------- outputs


def claims_latex(frame: pd.DataFrame) -> str:
    """Booktabs longtable: one row per test, the claim's text and verdict on its first row."""
    def num(v, fmt="{:+.2f}"):
        return fmt.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else "--"

    data, index = [], []
    for claim, g in frame.groupby("claim", sort=False):
        for i, r in enumerate(g.itertuples(index=False)):
            first = i == 0
            index.append(_tex(f"{r.claim}: {r.text}") + f" [{r.claim_verdict}]" if first else "")
            ci = f"[{num(r.ci_low)}, {num(r.ci_high)}]" if math.isfinite(r.ci_low) else ""
            data.append([
                _tex(f"{r.table} {r.scenario} {metric_label(r.metric)}"),
                _tex(r.tested_as.split(": ", 1)[-1].split(", paired")[0]) if r.cell else _tex(r.tested_as),
                _tex(r.direction.replace("_", " ")), num(r.paper_diff),
                f"{num(r.mean_diff)} {ci}".strip(), str(int(r.n)),
                num(r.p_holm, "{:.3g}"), r.verdict,
            ])
    columns = ["Test", "Compared", "Claimed", "$\\Delta$ paper", "$\\Delta$ ours [95\\% CI]", "n",
               "$p_{\\mathrm{Holm}}$", "Verdict"]
    table = pd.DataFrame(data, columns=columns, index=pd.Index(index, name="Claim"))
    caption = (
        "The paper's FMNIST claims tested on our runs: each test is a paired comparison over seeds "
        "(cell minus the comparison cell, CL unless stated) with the paired t 95\\% interval; p values "
        "Holm-adjusted over all tests of the table; verdict at $\\alpha = 0.05$: holds (significant in "
        "the claimed direction), contradicted (significant against it), not resolved otherwise. "
        "A claim holds when all its tests hold. $\\Delta$ paper: the same difference in the published means."
    )
    styler = table.style
    return ("% claims: generated by `asymcl claims` (needs \\usepackage{booktabs,longtable})\n"
            + styler.to_latex(hrules=True, caption=caption, label="tab:claims",
                              environment="longtable",
                              column_format="p{4.5cm}lp{3.5cm}lrrrrl"))


def _tex(text: str) -> str:
    return (str(text).replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%")
            .replace("_", r"\_").replace("#", r"\#").replace("$", r"\$"))
