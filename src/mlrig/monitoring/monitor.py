"""One monitoring pass with its side effects: read the window, assess it, store the result for
the server, log an MLflow run, and render the reports. ``mlrig monitor`` and (next) the closed
loop call ``monitor``; the assessment itself is pure (assess.py)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlrig.monitoring.assess import Assessment, Rules, assess
from mlrig.monitoring.profile import ReferenceProfile

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlrig.config import Settings
    from mlrig.predictions.store import PredictionStore
    from mlrig.predictions.window import Window


@dataclass(frozen=True)
class MonitorOutcome:
    assessment: Assessment
    result_id: int  # in the prediction store's monitoring_results
    run_id: str | None  # the MLflow monitoring run
    html: Path | None  # Evidently's report, when asked for
    html_rows: int | None  # rows Evidently rendered (a stated sample of a large window)
    seconds: dict[str, float]


def rules_from(settings: Settings) -> Rules:
    m = settings.monitoring
    return Rules(
        m.metric or settings.tracking.champion_metric,
        m.drift_share,
        m.min_rows,
        m.min_labels,
        m.tolerance,
        m.tolerance_mode,
    )


def monitor(
    settings: Settings,
    client: MlflowClient,
    store: PredictionStore,
    model: str | None = None,
    since: dt.datetime | None = None,
    last: int | None = None,
    html: Path | None = None,
) -> MonitorOutcome:
    """Assess ``model`` (NAME, or NAME@ALIAS / NAME/VERSION for one version's rows) over the
    window; ``since`` defaults to ``monitoring.since`` unless ``last`` is given."""
    import time

    from mlrig.monitoring.references import load_reference
    from mlrig.predictions.window import read_window
    from mlrig.tracking.monitoring import VersionRecord, version_record
    from mlrig.tracking.registry import resolve_version

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    ref = model or settings.tracking.model_name
    # NAME: every version in the window; NAME@ALIAS or NAME/VERSION: that version's rows
    name, version = resolve_version(client, ref) if "@" in ref or "/" in ref else (ref, None)
    window = read_window(store, name, since, last)
    if version is not None:
        window = _only(window, version)
    seconds["read"] = time.perf_counter() - t0
    records: dict[str, VersionRecord] = {}
    references: dict[str, ReferenceProfile] = {}

    def record_for(v: str) -> VersionRecord:
        if v not in records:
            records[v] = version_record(client, name, v)
        return records[v]

    def reference_for(v: str) -> ReferenceProfile:
        if v not in references:
            references[v] = load_reference(
                client, record_for(v), settings.monitoring.reference_rows
            )
        return references[v]

    t1 = time.perf_counter()
    for part in window.parts:  # load before timing the compute
        reference_for(part.version)
    seconds["references"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    result = assess(
        name,
        window,
        reference_for,
        lambda v: record_for(v).metrics,
        rules_from(settings),
    )
    seconds["assess"] = time.perf_counter() - t2
    from mlrig.monitoring.report import render_summary_html

    summary_html = render_summary_html(result, references)
    html_rows = None
    if html is not None:
        from mlrig.monitoring.evidently_report import write_evidently_report

        html_rows = write_evidently_report(
            html, window, references, settings.monitoring.report_rows
        )
    document = json.dumps(result.as_dict(), default=str)
    result_id = store.save_monitoring(name, result.verdict, document, summary_html)
    run_id = None
    if settings.monitoring.track:
        run_id = _log_run(settings, client, result, document, summary_html, html)
    seconds["total"] = time.perf_counter() - t0
    return MonitorOutcome(result, result_id, run_id, html, html_rows, seconds)


def _only(window: Window, version: str) -> Window:
    from dataclasses import replace

    return replace(window, parts=tuple(p for p in window.parts if p.version == version))


def _log_run(
    settings: Settings,
    client: MlflowClient,
    result: Assessment,
    document: str,
    summary_html: str,
    html: Path | None,
) -> str:
    from mlrig.tracking import tags
    from mlrig.tracking.monitoring import log_monitoring_run
    from mlrig.tracking.store import ensure_experiment

    latest = result.latest
    metrics: dict[str, float] = {"rows": float(result.window["rows"])}
    params: dict[str, object] = {
        "since": result.window["since"],
        "last": result.window["last"],
        "versions": ",".join(v.version for v in result.versions) or "-",
    }
    if latest is not None:
        metrics["labelled_rows"] = float(latest.quality.labelled)
        if latest.drift is not None:
            metrics["drift_share"] = latest.drift.share
            metrics["drifted_columns"] = float(latest.drift.drifted)
            for c in latest.drift.columns:
                metrics[f"drift_score.{c.column}"] = c.score
                params[f"drift_test.{c.column}"] = c.test
        if latest.prediction_drift is not None:
            metrics["drift_score.prediction"] = latest.prediction_drift.score
        q = latest.quality
        if q.live is not None:
            metrics[f"live_{q.metric}"] = q.live
        if q.offline is not None:
            metrics[f"offline_{q.metric}"] = q.offline
        metrics.update({f"live.{k}": v for k, v in q.metrics.items()})
    files = {
        "monitoring/result.json": document.encode(),
        "monitoring/report.html": summary_html.encode(),
    }
    if html is not None:
        files["monitoring/evidently_report.html"] = html.read_bytes()
    return log_monitoring_run(
        client,
        ensure_experiment(client, settings, f"{result.model}-monitoring"),
        f"monitor-{result.model}-v{latest.version if latest else 'none'}",
        {
            tags.MODEL: result.model,
            tags.MODEL_VERSION: latest.version if latest else "",
            tags.MONITORING_VERDICT: result.verdict,
        },
        params,
        metrics,
        files,
    )
