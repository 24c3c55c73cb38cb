"""The README's results section, rendered from a published record (``results/published``).

Nothing in the README's results is typed by hand: `render` builds the section from the
record's own files (``record.json``, ``runs.csv``, ``tables/claims.csv``,
``tables/fit_to_paper.csv``, ``workflow/paper_results.csv`` for the published numbers) and
`update_readme` replaces the text between the README's ``<!-- results:start -->`` and
``<!-- results:end -->`` markers. A test re-renders the section and compares, so an edit
by hand (or a record published without re-rendering) fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from asymcl.errors import InputError
from asymcl.io import atomic_path
from asymcl.report.fit import read_csv_checked, read_paper
from asymcl.report.stats import summarize

START, END = "<!-- results:start -->", "<!-- results:end -->"
METRIC_NAMES = {"uwa": "UWA", "accuracy": "accuracy"}


def _cell_label(eta: float, gamma: float) -> str:
    if eta == 0 and gamma == 0:
        return "CL"
    if gamma == 0:
        return f"η={eta:g}"
    if eta == 0:
        return f"γ={gamma:g}"
    return f"η={eta:g}, γ={gamma:g}"


def _paper_lookup(paper: pd.DataFrame) -> dict:
    return {(r.table, r.scenario, float(r.eta), float(r.gamma), r.metric): (float(r.value), bool(r.uncertain))
            for r in paper.itertuples()}


def grid_table(runs: pd.DataFrame, paper: pd.DataFrame, family: str, cells: list[tuple[float, float]],
               metric: str) -> str:
    """Markdown: one row per scenario, one column per cell, ``mean ± std`` and the paper's mean."""
    mine = runs[_in_family(runs, family)]
    lookup = _paper_lookup(paper)
    header = "| scenario | " + " | ".join(_cell_label(e, g) for e, g in cells) + " |"
    lines = [header, "|" + "---|" * (len(cells) + 1)]
    for scenario in sorted(mine["scenario"].unique(), key=lambda s: [float(x) for x in s.split("-")] if s[0].isdigit() else [0]):
        row = [scenario.replace("-", ":")]
        for eta, gamma in cells:
            values = mine[(mine.scenario == scenario) & (mine.eta == eta) & (mine.gamma == gamma)][metric]
            s = summarize(values.tolist())
            published = lookup.get((family, scenario, eta, gamma, metric))
            text = f"{s.mean:.1f} ± {s.std:.1f}" if s.n >= 2 else (f"{s.mean:.1f}" if s.n else "–")
            if published is not None:
                text += f" ({published[0]:.1f}{'?' if published[1] else ''})"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def claims_table(claims: pd.DataFrame) -> str:
    per_claim = claims.drop_duplicates("claim")[["claim", "text", "claim_verdict"]]
    lines = ["| claim | verdict | tests: holds / contradicted / not resolved |", "|---|---|---|"]
    for r in per_claim.itertuples():
        v = claims[claims.claim == r.claim]["verdict"].value_counts()
        counts = " / ".join(str(int(v.get(k, 0))) for k in ("holds", "contradicted", "not resolved"))
        lines.append(f"| {r.text} | **{r.claim_verdict}** | {counts} |")
    return "\n".join(lines)


def fit_table(fit: pd.DataFrame) -> str:
    lines = ["| family | table | metric | cells | MAE | RMS | paper mean inside our 95% CI |", "|---|---|---|---|---|---|---|"]
    for r in fit.itertuples():
        lines.append(f"| {r.family} | {r.table} | {METRIC_NAMES.get(r.metric, r.metric)} | {int(r.matched)} | "
                     f"{r.mae:.1f} | {r.rms:.1f} | {int(r.inside)} of {int(r.testable)} |")
    return "\n".join(lines)


def _in_family(runs: pd.DataFrame, *families: str) -> pd.Series:
    """Rows of ``runs`` that belong to any of ``families`` (runs.csv's ``experiments`` is a
    ';'-separated list: a run shared by several families is trained once)."""
    return runs["experiments"].fillna("").str.split(";").apply(lambda fams: bool(set(fams) & set(families)))


#: The LaTeX of the family labels (config `label:`), as plain text for markdown.
_LATEX_TO_TEXT = {"\\eta": "η", "\\gamma": "γ", "\\tau": "τ", "$": ""}


def _plain(label: str) -> str:
    for latex, text in _LATEX_TO_TEXT.items():
        label = label.replace(latex, text)
    return label


def _interval(mean: float, low: float, high: float) -> str:
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


def baselines_table(vs_cl: pd.DataFrame, vs_acl: pd.DataFrame, metric: str = "uwa") -> str:
    """Markdown: per method (row) and scenario, ``mean ± std`` of ``metric`` and the paired
    differences against each family's baseline (CL; the paper's best ACL cell), mean [95% CI],
    from the `baselines` and `baselines_acl` family tables (the same runs, two baselines)."""
    cl = vs_cl[vs_cl.metric == metric]
    acl = vs_acl[vs_acl.metric == metric].set_index(["scenario", "cell"])
    scenarios = list(dict.fromkeys(cl.scenario))
    labels = dict(zip(cl.scenario, cl.scenario_label))
    names = [_plain(str(t[t.is_baseline.astype(bool)].label.iloc[0])) for t in (cl, vs_acl)]
    header = "| method | " + " | ".join(f"{labels[s]}: {METRIC_NAMES.get(metric, metric)} | vs {names[0]} | "
                                          f"vs {names[1]}" for s in scenarios) + " |"
    lines = [header, "|" + "---|" * (1 + 3 * len(scenarios))]
    for cell, rows in cl.groupby("cell", sort=False):
        row = [_plain(str(rows.label.iloc[0]))]
        for scenario in scenarios:
            r = rows[rows.scenario == scenario].iloc[0]
            a = acl.loc[(scenario, cell)]
            row.append(f"{r['mean']:.1f} ± {r['std']:.1f}" if r.n >= 2 else "–")
            row.append("(baseline)" if r.is_baseline else _interval(r.diff_mean, r.diff_ci_low, r.diff_ci_high))
            row.append("(baseline)" if a.is_baseline else _interval(a.diff_mean, a.diff_ci_low, a.diff_ci_high))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _baselines_part(published: Path, runs: pd.DataFrame) -> list[str]:
    """The README's baselines paragraphs, when the record holds the baselines families."""
    tables = published / "tables"
    if not (tables / "baselines.csv").is_file():
        return []
    needed = ["scenario", "scenario_label", "cell", "label", "is_baseline", "metric", "mean", "std", "n",
              "diff_mean", "diff_ci_low", "diff_ci_high"]
    vs_cl, vs_acl = (read_csv_checked(tables / f"{name}.csv", needed, f"{name}.csv (asymcl family-table)",
                                      dtype={"scenario": str, "cell": str})
                     for name in ("baselines", "baselines_acl"))
    mine = runs[_in_family(runs, "baselines")]
    return [
        f"**Beyond the paper: the standard imbalance baselines** ({len(mine)} runs, the same splits and seeds; "
        "CL and ACL η=60 are Table 1's runs; one-stage = encoder and linear head trained end to end for "
        "`epochs1` epochs). UWA (%), mean ± std over seeds, and the paired per-seed difference against CL and "
        "against ACL η=60 with its 95% t interval (points; per comparison, not adjusted for the table's "
        "multiplicity):",
        baselines_table(vs_cl, vs_acl),
        "Logit-adjusted CE with τ=1 and balanced softmax are the same loss (log n_c and log π_c differ by a "
        "constant, which softmax cancels): they differ only in floating-point rounding, so the gap between their "
        "rows is how far rounding alone moves a run here, a yardstick for the other differences.",
    ]


def _protocol_note(fit: pd.DataFrame) -> list[str]:
    """How to read the protocol families' fit rows, when the record has them."""
    families = sorted({f for f in fit["family"] if str(f).startswith("protocol-")})
    if not families:
        return []
    return ["The `protocol-*` rows are a sample of config/protocol.yaml's families (fewer scenarios and cells "
            "than Tables 1-2; see `experiments.json`): compare them with each other, `protocol-base` being this "
            "record's protocol on the same cells, not with the `table1`/`table2` rows. Each other variant changes "
            "one choice of the protocol (docs/training.md)."]


def _settings_line(runs: pd.DataFrame) -> str:
    keys = [k for k in ("arch", "pretrained", "epochs1", "epochs2", "lr", "batch_size", "nan_policy", "normalization")
            if k in runs.columns]
    parts = []
    for key in keys:
        values = sorted({str(v) for v in runs[key].dropna()})
        parts.append(f"`{key}` {'/'.join(values)}")
    return ", ".join(parts)


def render(published: str | Path, paper_results: str | Path, figure_prefix: str = "results/published") -> str:
    """The README's results section (markdown) from a published record folder."""
    published = Path(published)
    record_path = published / "record.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{record_path}: cannot read it ({err}); publish the record first (asymcl publish)") from None
    runs = read_csv_checked(published / "runs.csv", ["scenario", "seed", "eta", "gamma", "uwa", "experiments"],
                            "runs.csv of a published record (asymcl publish)", dtype={"scenario": str})
    paper = read_paper(paper_results)
    claims = read_csv_checked(published / "tables" / "claims.csv", ["claim", "text", "claim_verdict", "verdict"],
                              "claims.csv of a published record (asymcl claims)")
    fit = read_csv_checked(published / "tables" / "fit_to_paper.csv",
                           ["family", "table", "metric", "matched", "mae", "rms", "inside", "testable"],
                           "fit_to_paper.csv of a published record (asymcl fit-to-paper)")
    commits = sorted({str(c) for c in runs.get("code_commit", pd.Series(dtype=str)).dropna()})
    paper_runs = runs[_in_family(runs, "table1", "table2")]
    seeds = sorted(paper_runs.seed.unique())
    scenarios = sorted(paper_runs.scenario.unique())
    cells = sorted({(float(e), float(g)) for e, g in zip(paper_runs.eta, paper_runs.gamma)})
    table1 = [c for c in cells if c[1] == 0]
    table2 = [c for c in cells if c[0] == 0]
    wall = record.get("wall_time_s")
    machine = record.get("machine") or "an unknown machine"
    if isinstance(machine, dict):
        machine = f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores ({machine.get('platform', '?')})"
    parts = [
        f"**CPU record: Tables 1-2 on real Fashion-MNIST (T-shirt vs shirt).** {len(paper_runs)} runs: "
        f"{len(scenarios)} scenarios x {len(cells)} loss cells x {len(seeds)} seeds"
        + (f" ({len(runs)} runs in the whole record)" if len(runs) != len(paper_runs) else "") + ". "
        "**Encoders trained from scratch** (`pretrained: none`: no ImageNet weights can be downloaded "
        "where this record was made; the paper's encoders were ImageNet-pretrained), so our numbers are "
        "not expected to equal the paper's. Settings: " + _settings_line(paper_runs) + ".",
        f"Made by `{record.get('command', 'unknown')}` at commit {', '.join(f'`{c[:10]}`' for c in commits) or 'unknown'} "
        f"on {machine}"
        + (f" in {float(wall) / 60:.0f} min wall time" if wall else "") + f" ({record.get('date', 'date unknown')}).",
        "UWA (%), mean ± std over seeds, the paper's mean in brackets (`?`: uncertain in the extracted text). "
        "Table 1 (η grid, γ = 0):",
        grid_table(runs, paper, "table1", table1, "uwa"),
        "Table 2 (γ grid, η = 0):",
        grid_table(runs, paper, "table2", table2, "uwa"),
        f"![UWA and accuracy against the imbalance ratio, Table 1 cells]({figure_prefix}/figures/table1.png)",
        "**The paper's FMNIST claims**, each tested by paired per-seed differences against CL (same seed = same "
        "split), 95% t intervals and Holm-adjusted p (`tables/claims.csv` has every test):",
        claims_table(claims),
        "**Fit to the published numbers** (mean absolute and RMS difference of our cell means from the paper's, "
        "in points; how many published means fall inside our 95% interval):",
        fit_table(fit),
        *_protocol_note(fit),
        *_baselines_part(published, runs),
        "Everything above is rendered from `results/published/` by `asymcl readme-results`; accuracy tables, "
        "paired differences against CL and ours-vs-paper are in `results/published/tables/`. Rebuild from the raw "
        "files: `snakemake --configfile config/record-cpu.yaml --cores 2`, then `asymcl publish` and "
        "`asymcl readme-results` (docs/workflow.md).",
    ]
    return "\n\n".join(parts) + "\n"


def update_readme(readme: str | Path, section: str, check: bool = False) -> bool:
    """Put ``section`` between the README's results markers; True when the file changed
    (with ``check``, nothing is written)."""
    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise InputError(f"{readme}: no '{START}' ... '{END}' markers; add them where the results go")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{section}{END}{tail}"
    if new == text:
        return False
    if not check:
        with atomic_path(readme) as tmp:
            tmp.write_text(new)
    return True
