"""mlrig's own compact HTML report of an assessment: one self-contained page (no scripts, no
external assets), stored with each result for the server and logged to the MLflow run.
Evidently's full report is rendered only on request (evidently_report.py)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlrig.monitoring.assess import Assessment, VersionAssessment
    from mlrig.monitoring.profile import ReferenceProfile

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b00020;font-weight:600}.ok{color:#1b5e20}
"""


def render_summary_html(result: Assessment, references: dict[str, ReferenceProfile]) -> str:
    """The assessment as an HTML document (per version: drift table, live quality)."""
    w = result.window
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>mlrig monitoring: {escape(result.model)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(result.model)}: <span class='{_cls(result.verdict)}'>"
        f"{escape(result.verdict)}</span></h1>",
        f"<p>computed {escape(result.computed_at)}; window: {w['rows']} predictions "
        f"from {escape(str(w['first_at']))} to {escape(str(w['last_at']))}</p>",
    ]
    parts += [f"<p>{escape(n)}</p>" for n in result.notes]
    for v in result.versions:
        parts.append(_version_html(v, references.get(v.version)))
    parts.append("</body></html>")
    return "\n".join(parts)


def _version_html(v: VersionAssessment, ref: ReferenceProfile | None) -> str:
    out = [f"<h2>version {escape(v.version)}: {escape(v.verdict)} ({v.rows} predictions)</h2>"]
    out += [f"<p>{escape(n)}</p>" for n in v.notes]
    if v.drift is not None:
        d = v.drift
        out.append(
            f"<p>{d.drifted} of {len(d.columns)} features drifted (share {d.share:.2f}, "
            f"dataset drift at {d.drift_share:.2f}): "
            f"<span class='{_cls('drift' if d.dataset_drift else 'ok')}'>"
            f"{'drift' if d.dataset_drift else 'no drift'}</span></p>"
        )
        out.append(
            "<table><tr><th>column</th><th>test</th><th>score</th><th>threshold</th>"
            "<th>drifted</th><th>reference mean</th></tr>"
        )
        columns = list(d.columns) + ([v.prediction_drift] if v.prediction_drift else [])
        for c in columns:
            stats = ref.stats.get(c.column, {}) if ref is not None else {}
            mean = stats.get("mean")
            out.append(
                f"<tr><td>{escape(c.column)}</td><td>{c.test}</td><td class='n'>{c.score:.4g}</td>"
                f"<td class='n'>{c.threshold:g}</td><td class='{_cls('drift' if c.drifted else 'ok')}'>"
                f"{'yes' if c.drifted else 'no'}</td>"
                f"<td class='n'>{'' if mean is None else f'{mean:.4g}'}</td></tr>"
            )
        out.append("</table>")
    q = v.quality
    out.append(f"<p>live quality: {escape(q.reason)}</p>")
    if q.metrics:
        cells = "".join(f"<td>{escape(k)} {val:.4f}</td>" for k, val in q.metrics.items())
        out.append(f"<table><tr>{cells}</tr></table>")
    return "\n".join(out)


def _cls(verdict: str) -> str:
    return "ok" if verdict in ("ok", "insufficient_data") else "bad"
