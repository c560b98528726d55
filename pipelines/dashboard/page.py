"""Render DashboardData as one self-contained HTML page (plotly.js inlined: works offline)."""
from __future__ import annotations

import html
from collections import Counter, defaultdict
from datetime import datetime, timezone

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from pipelines.dashboard.data import DashboardData

_LAYOUT = dict(margin=dict(l=40, r=20, t=50, b=40), height=340, template="plotly_white")


def _figure_html(figure: go.Figure, div_id: str) -> str:
    figure.update_layout(**_LAYOUT)
    return pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def predictions_over_time(data: DashboardData) -> go.Figure:
    by_day: dict[str, Counter] = defaultdict(Counter)
    for row in data.predictions:
        by_day[str(row.get("created_at", ""))[:10]][row.get("predicted_label") or "FAILED"] += 1
    days = sorted(by_day)
    labels = sorted({label for counts in by_day.values() for label in counts})
    figure = go.Figure([go.Bar(name=label, x=days, y=[by_day[d][label] for d in days]) for label in labels])
    return figure.update_layout(title="Predictions over time (by day)", barmode="stack", xaxis_type="category")


def class_distribution(data: DashboardData) -> go.Figure:
    counts = Counter(row["predicted_label"] for row in data.predictions if row.get("status") == "OK")
    figure = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), marker_color="#2a6f97"))
    return figure.update_layout(title="Predicted class distribution")


def by_attribute(data: DashboardData, attribute: str) -> go.Figure:
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in data.predictions:
        if row.get("status") == "OK":
            counts[row.get(attribute) or "unknown"][row["predicted_label"]] += 1
    groups = sorted(counts)
    labels = sorted({label for c in counts.values() for label in c})
    figure = go.Figure([go.Bar(name=label, x=groups, y=[counts[g][label] for g in groups]) for label in labels])
    return figure.update_layout(title=f"Predictions by {attribute}", barmode="stack")


def model_accuracy(data: DashboardData) -> go.Figure:
    scored = [m for m in data.models if m.accuracy is not None]
    versions = [f"v{m.version}" for m in scored]
    figure = go.Figure(
        [
            go.Bar(name="test accuracy", x=versions, y=[m.accuracy for m in scored], marker_color="#468faf"),
            go.Scatter(name="majority baseline", x=versions, y=[m.baseline for m in scored], mode="markers", marker_size=12),
        ]
    )
    figure.add_hline(y=data.threshold, line_dash="dash", line_color="#c1121f", annotation_text=f"gate {data.threshold:.2f}")
    return figure.update_layout(title="Model accuracy per version vs the gate", yaxis_range=[0, 1])


def outcomes(data: DashboardData) -> go.Figure:
    statuses = Counter(row.get("status", "unknown") for row in data.predictions)
    quarantine = data.quarantine_reasons
    figure = go.Figure(
        [
            go.Bar(name="predictions", x=[f"prediction {s}" for s in statuses], y=list(statuses.values())),
            go.Bar(name="quarantined records", x=[f"quarantine: {r}" for r in quarantine], y=list(quarantine.values())),
        ]
    )
    return figure.update_layout(title="Outcomes: scored, failed, quarantined")


def _cards(data: DashboardData) -> str:
    latest = data.models[-1] if data.models else None
    accuracy = "n/a" if latest is None or latest.accuracy is None else f"{latest.accuracy:.2f}"
    in_service = "none"
    if data.in_service:  # a model package ARN ends in <group>/<version>; a bare model name is shown as is
        in_service = f"version {data.in_service.rsplit('/', 1)[-1]}" if ":model-package/" in data.in_service else data.in_service
    cards = [
        ("Predictions stored", str(len(data.predictions))),
        ("Failed recordings", str(len(data.failures))),
        ("Quarantined records", str(sum(data.quarantine_reasons.values()))),
        ("Model in service", f"{in_service} ({data.endpoint_status or 'no endpoint'})"),
        ("Latest accuracy / gate", f"{accuracy} / {data.threshold:.2f}"),
    ]
    return "".join(
        f'<div class="card"><div class="value">{html.escape(v)}</div><div class="label">{html.escape(k)}</div></div>'
        for k, v in cards
    )


def _failures_table(data: DashboardData) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(r.get('recording_id')))}</td><td>{html.escape(str(r.get('error_reason') or ''))}</td>"
        f"<td>{html.escape(str(r.get('error') or ''))}</td><td>{html.escape(str(r.get('created_at')))}</td></tr>"
        for r in data.failures[-20:]
    )
    return f"<table><tr><th>recording</th><th>reason</th><th>error</th><th>when</th></tr>{rows}</table>" if rows else "<p>No failures.</p>"


def render(data: DashboardData, refresh_seconds: int | None = None) -> str:
    charts = [
        (predictions_over_time(data), "chart-over-time"),
        (class_distribution(data), "chart-classes"),
        (by_attribute(data, "device"), "chart-device"),
        (by_attribute(data, "location"), "chart-location"),
        (model_accuracy(data), "chart-accuracy"),
        (outcomes(data), "chart-outcomes"),
    ]
    refresh = f'<meta http-equiv="refresh" content="{refresh_seconds}">' if refresh_seconds else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = "".join(f'<section class="chart">{_figure_html(fig, div)}</section>' for fig, div in charts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>Samay lung-sound predictions</title>
<script>{get_plotlyjs()}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; background: #f7f9fb; color: #1b263b; }}
.cards {{ display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 16px; }}
.card {{ background: white; border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 3px #0002; min-width: 160px; }}
.card .value {{ font-size: 1.4em; font-weight: 600; }} .card .label {{ color: #555; }}
.grid {{ display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; }}
@media (max-width: 900px) {{ .grid {{ grid-template-columns: minmax(0, 1fr); }} }}
.chart {{ background: white; border-radius: 8px; box-shadow: 0 1px 3px #0002; }}
table {{ border-collapse: collapse; background: white; }} td, th {{ border: 1px solid #ddd; padding: 4px 8px; }}
</style></head><body>
<h1>Samay lung-sound predictions</h1><p>Generated {generated} from S3 predictions/, the model registry, the endpoint and quarantine/.</p>
<div class="cards">{_cards(data)}</div>
<div class="grid">{body}</div>
<h2>Recent failures</h2>{_failures_table(data)}
</body></html>"""
