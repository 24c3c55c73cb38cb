"""The README's results section (`asymcl.report.readme_results`): the baselines table is
the family tables' numbers, cell by cell."""

from __future__ import annotations

import pandas as pd

from asymcl.report.readme_results import _plain, baselines_table


def _family(baseline: str, rows: list[tuple]) -> pd.DataFrame:
    """A family table (asymcl.families columns) for scenarios 95-5 and 98-2."""
    out = []
    for scenario, label_s in (("95-5", "95:5"), ("98-2", "98:2")):
        for cell, label, mean, diff in rows:
            base = cell == baseline
            out.append({"scenario": scenario, "scenario_label": label_s, "cell": cell, "label": label,
                        "is_baseline": base, "metric": "uwa", "mean": mean, "std": 1.5, "n": 4,
                        "diff_mean": float("nan") if base else diff, "diff_ci_low": float("nan") if base else diff - 2,
                        "diff_ci_high": float("nan") if base else diff + 2})
            out.append({**out[-1], "metric": "accuracy", "mean": 99.0})
    return pd.DataFrame(out)


def test_the_baselines_table_shows_each_family_tables_numbers():
    cells = [("eta0_gamma0", "CL", 60.0, 0.0), ("eta60_gamma0", "ACL ($\\eta=60$)", 62.5, 2.5),
             ("eta0_gamma0_method-one-stage", "CE (one-stage)", 70.25, 10.25)]
    vs_cl = _family("eta0_gamma0", cells)
    vs_acl = _family("eta60_gamma0", [(c, lab, m, d - 2.5) for c, lab, m, d in cells])
    lines = baselines_table(vs_cl, vs_acl).splitlines()
    assert lines[0] == ("| method | 95:5: UWA | vs CL | vs ACL (η=60) | 98:2: UWA | vs CL | vs ACL (η=60) |")
    assert len(lines) == 2 + len(cells)  # header, rule, one row per method
    assert lines[2].startswith("| CL | 60.0 ± 1.5 | (baseline) | -2.5 [-4.5, -0.5] |")
    assert lines[3].startswith("| ACL (η=60) | 62.5 ± 1.5 | +2.5 [+0.5, +4.5] | (baseline) |")
    assert lines[4] == ("| CE (one-stage) | 70.2 ± 1.5 | +10.2 [+8.2, +12.2] | +7.8 [+5.8, +9.8] "
                        "| 70.2 ± 1.5 | +10.2 [+8.2, +12.2] | +7.8 [+5.8, +9.8] |")


def test_latex_labels_become_plain_text():
    assert _plain("logit-adjusted ($\\tau=1$)") == "logit-adjusted (τ=1)"
    assert _plain("focal ($\\gamma=2$)") == "focal (γ=2)"
