"""The controlled double-seesaw benchmark's headline: for each generator term, does the model
built for it beat SharedBottom and MMoE when the term is on, and not lose when it is off?

Input: the comparison reports of `scripts/seesaw_benchmark.sh`, one per data set variant
(`all_on`, `<term>_off`) and baseline (`<variant>` against SharedBottom, `<variant>-vs-mmoe`
against MMoE; the second reuses the first's runs). Each gives the paired 95% interval over
test users of the model's gain in the mean over domain x task cells (`intervals.csv`,
`evaluation.uncertainty`). The claim for a term holds when, on `all_on`, both gains' intervals
lie above 0, and, on `<term>_off`, neither lies below 0. That the gain comes from the term, and
not from elsewhere, shows as `on - off`: the gain the model loses when the term is switched off.

    python -m ray_jobs.reports.mechanisms reports/seesaw
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ray_jobs.core.tables import markdown


@dataclass(frozen=True)
class Mechanism:
    """A generator term (`data.synthetic.MECHANISM_TERMS`) and the model built for it."""

    term: str
    model: str
    what: str


MECHANISMS = (
    Mechanism("user_groups", "pepnet", "per-user weights of the feature groups (PPNet's gates)"),
    Mechanism("domain_dims", "pepnet", "per-domain scales of shared embedding dims (EPNet's gate)"),
    Mechanism("conflict", "stem", "two tasks prefer opposite items on half of the items (STEM-Net's embeddings)"),
    Mechanism("capacity", "smes", "more nonlinear terms for the sparser tasks (SMES's task experts)"),
)
BASELINES = ("sharedbottom", "mmoe")
ALL_ON = "all_on"


def report_dir(root: Path, variant: str, baseline: str) -> Path:
    """Where `scripts/seesaw_benchmark.sh` writes a variant's comparison against `baseline`."""
    return root / (variant if baseline == BASELINES[0] else f"{variant}-vs-{baseline}")


def paired_gain(root: Path, variant: str, baseline: str, model: str, metric: str) -> tuple[float, float, float] | None:
    """(mean gain, low, high) of `model` over `baseline` in the mean over cells of `metric`, from
    the report's bootstrap (`intervals.csv`) and seed means (`summary.csv`); None when missing."""
    directory = report_dir(root, variant, baseline)
    intervals, summary = directory / "intervals.csv", directory / "summary.csv"
    if not intervals.exists() or not summary.exists():
        return None
    rows = pd.read_csv(intervals).set_index(["model", "metric"])
    means = pd.read_csv(summary).set_index("model")
    column = f"mean_{metric}"
    if (model, metric) not in rows.index or model not in means.index or baseline not in means.index:
        return None
    row = rows.loc[(model, metric)]
    return float(means.loc[model, column] - means.loc[baseline, column]), float(row.gain_low), float(row.gain_high)


def _cell(gain: tuple[float, float, float] | None) -> str:
    return "absent" if gain is None else f"{gain[0]:+.4f} [{gain[1]:+.4f}, {gain[2]:+.4f}]"


def _verdict(on: list, off: list) -> str:
    """'yes' / 'no (<why>)' / 'not measured' for one term's claim."""
    if any(g is None for g in on + off):
        return "not measured"
    why = [f"on: not above {b}" for b, g in zip(BASELINES, on) if g[1] <= 0]
    why += [f"off: below {b}" for b, g in zip(BASELINES, off) if g[2] < 0]
    return "yes" if not why else "no (" + "; ".join(why) + ")"


def mechanism_table(root: Path, metric: str = "gauc") -> pd.DataFrame:
    """One row per term: the gains of its model on `all_on` and on `<term>_off`, the drop in its
    gain over SharedBottom when the term is switched off (a point estimate: the two data sets'
    labels differ, so the gains are not paired), and the verdict."""
    rows = []
    for m in MECHANISMS:
        on = [paired_gain(root, ALL_ON, b, m.model, metric) for b in BASELINES]
        off = [paired_gain(root, f"{m.term}_off", b, m.model, metric) for b in BASELINES]
        rows.append({"term": m.term, "model": m.model,
                     **{f"on: vs {b}": _cell(g) for b, g in zip(BASELINES, on)},
                     **{f"off: vs {b}": _cell(g) for b, g in zip(BASELINES, off)},
                     # what the term's presence adds to the gain: data sets differ, so no pairing
                     f"on - off: vs {BASELINES[0]}": "absent" if on[0] is None or off[0] is None
                     else f"{on[0][0] - off[0][0]:+.4f}",
                     "claim holds": _verdict(on, off)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the reports directory of scripts/seesaw_benchmark.sh")
    args = parser.parse_args(argv)
    if not (args.root / ALL_ON).is_dir():  # a mistyped root would otherwise read as "not measured"
        parser.error(f"{args.root}: no {ALL_ON}/ report in it (run scripts/seesaw_benchmark.sh first)")
    for metric in ("gauc", "auc"):
        table = mechanism_table(args.root, metric)
        text = markdown(table) + "\n" + "".join(f"- {m.term}: {m.what}\n" for m in MECHANISMS)
        print(f"Gain in mean {metric.upper()} over the domain x task cells, mean over seeds "
              f"[paired 95% interval over test users]:\n\n{text}")
        (args.root / f"mechanisms_{metric}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
