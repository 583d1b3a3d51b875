"""Evaluation reports: text tables, Markdown and plots (recommendations, the assistant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # the object API: no display, no global state

from tastegraph.artifacts import atomic_path, write_json
from tastegraph.evaluate.assistant import AssistantReport
from tastegraph.evaluate.metrics import Estimate
from tastegraph.evaluate.recommend import OURS, RecommendReport, TaskReport

TASKS = {
    "next_purchase": "Next engagements (home feed; purchases on H&M)",
    "basket_completion": "Basket completion (related items)",
}


def task_table(title: str, task: TaskReport) -> list[str]:
    """Markdown table rows: one per method, one column per metric, then the ratio."""
    metrics = list(next(iter(task.metrics.values())))
    extras = sorted(
        {key for m, figures in task.extra.items() if m in task.metrics for key in figures}
    )
    header = ["method", *metrics, *extras, f"ours / method, {task.headline}"]
    lines = [
        f"### {title}",
        "",
        f"{task.units:,} {task.unit}, {task.queries:,} queries; 95% bootstrap intervals "
        f"resample {task.unit}, the same resamples for every method.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for method, estimates in task.metrics.items():
        cells = [method]
        cells += [f"{e.mean:.4f} [{e.low:.4f}, {e.high:.4f}]" for e in estimates.values()]
        figures = task.extra.get(method, {})
        cells += [_figure(figures.get(key)) for key in extras]
        ratio = task.ratio_to.get(method)
        cells.append(
            "—" if ratio is None else f"{ratio.mean:.2f} [{ratio.low:.2f}, {ratio.high:.2f}]"
        )
        lines.append("| " + " | ".join(cells) + " |")
    for name, figures in task.extra.items():
        if name not in task.metrics:
            lines += ["", f"{name}: " + ", ".join(f"{k} {_figure(v)}" for k, v in figures.items())]
    return [*lines, ""]


def markdown(report: RecommendReport, plot_name: str | None = None) -> str:
    split = ", ".join(f"{k} {v}" for k, v in report.split.items())
    lines = ["# Recommendation quality", "", f"Split: {split}.", ""]
    for attribute, title in TASKS.items():
        task = getattr(report, attribute)
        lines += (
            [f"### {title}", "", "No test data.", ""] if task is None else task_table(title, task)
        )
    if report.tuned:
        lines += ["Baselines tuned on the tuning split (NDCG of each grid setting, in order):", ""]
        lines += [
            f"- {name}: {tuned['params']}, chosen from {_scores(tuned['tuning_ndcg'])}"
            for name, tuned in report.tuned.items()
        ]
        lines.append("")
    if report.feed_fit:
        lines += [
            "Our feed, fitted on the training events' last tenth as `tastegraph train feed` "
            f"fits it: {report.feed_fit.summary()}.",
            "",
        ]
    if plot_name:
        lines += [f"![headline metrics with 95% intervals]({plot_name})", ""]
    return "\n".join(lines)


def plot(report: RecommendReport, path: Path) -> None:
    """Headline metric of every method, with its interval, one panel per task."""
    tasks = {a: t for a, t in TASKS.items() if getattr(report, a) is not None}
    figure = Figure(figsize=(6.5 * len(tasks), 4.5))
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for axis, (attribute, title) in zip(axes, tasks.items(), strict=True):
        task: TaskReport = getattr(report, attribute)
        names = list(task.metrics)
        estimates = [task.metrics[name][task.headline] for name in names]
        means = [e.mean for e in estimates]
        errors = [[e.mean - e.low for e in estimates], [e.high - e.mean for e in estimates]]
        colours = ["tab:red" if name == OURS else "tab:grey" for name in names]
        axis.barh(names, means, xerr=errors, color=colours, capsize=3)
        axis.invert_yaxis()
        axis.set_title(f"{title}: {task.headline}")
        axis.set_xlabel(f"{task.headline} (95% interval over {task.unit})")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def write(report: RecommendReport, folder: Path) -> Path:
    """recommend-<split>.json, .md and .png in folder; returns the Markdown path."""
    stem = f"recommend-{report.split['name']}"
    write_json(folder / f"{stem}.json", report)
    plot(report, folder / f"{stem}.png")
    path = folder / f"{stem}.md"
    with atomic_path(path) as tmp:
        tmp.write_text(markdown(report, f"{stem}.png"))
    return path


def _scores(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]" if values else "no tuning data"


def _figure(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.3f}"


def _interval(e: Estimate, digits: int = 3) -> str:
    return f"{e.mean:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def assistant_markdown(report: AssistantReport) -> str:
    split = ", ".join(f"{k} {v}" for k, v in report.split.items())
    lines = [
        "# Assistant quality",
        "",
        f"Split: {split}; {report.candidates} candidates.",
        "hit@1 with 95% intervals that resample shoppers; ratio: ours / method, paired.",
        "",
    ]
    for family, slices in report.families.items():
        lines += [f"### {family}", ""]
        header = ["method", *(f"{name} (n={s.queries})" for name, s in slices.items())]
        header.append("ours / method (all)")
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        everything = slices.get("all")
        for method in next(iter(slices.values())).methods:
            cells = [method, *(_interval(s.methods[method]["hit1"]) for s in slices.values())]
            ratio = everything.ratios.get(method) if everything else None
            cells.append("—" if ratio is None else _interval(ratio, 2))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### hit@1 by the target's label (all queries)", ""]
    labels = range(1, report.candidates + 1)
    lines += ["| method | " + " | ".join(f"[{n}]" for n in labels) + " |"]
    lines.append("|" + "---|" * (report.candidates + 1))
    for method, hits in report.by_position.items():
        lines.append(f"| {method} | " + " | ".join(f"{v:.2f}" for v in hits) + " |")
    lines += ["", "### Training (the same examples and schedule for every trained method)", ""]
    figures = list(next(iter(report.training.values()), {}))
    lines += ["| method | " + " | ".join(figures) + " |", "|" + "---|" * (len(figures) + 1)]
    for method, values in report.training.items():
        lines.append(f"| {method} | " + " | ".join(_figure(values[f]) for f in figures) + " |")
    return "\n".join([*lines, ""])


def assistant_json(report: AssistantReport) -> dict[str, Any]:
    """The report in the shape any tool can read: families -> slices -> queries, methods
    (hit1, mrr as [estimate, low, high]) and ratios (ours / method on hit@1)."""

    def triple(e: Estimate) -> list[float]:
        return [e.mean, e.low, e.high]

    families = {
        family: {
            "slices": {
                name: {
                    "queries": s.queries,
                    "methods": {
                        method: {metric: triple(e) for metric, e in metrics.items()}
                        for method, metrics in s.methods.items()
                    },
                    "ratios": {method: triple(e) for method, e in s.ratios.items()},
                }
                for name, s in slices.items()
            }
        }
        for family, slices in report.families.items()
    }
    return {
        "families": families,
        "candidates": report.candidates,
        "split": report.split,
        "hit1_by_position": report.by_position,
        "training": report.training,
    }


def write_assistant(report: AssistantReport, folder: Path) -> Path:
    """assistant-<split>.json and .md in folder; returns the Markdown path."""
    stem = f"assistant-{report.split['name']}"
    write_json(folder / f"{stem}.json", assistant_json(report))
    path = folder / f"{stem}.md"
    with atomic_path(path) as tmp:
        tmp.write_text(assistant_markdown(report))
    return path
