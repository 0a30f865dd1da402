"""Scheduled pipeline runs as Prefect deployments: register, serve, list, pause, resume, stop.

A deployment runs ``flows.train_flow`` or ``flows.loop_flow`` with plain parameters (an absolute
config path and home). Without a work pool this process serves it (Prefect's runner starts each
run in a subprocess); with one, the pool's workers run it, importing the flow by module path.

Overlap is excluded twice: the deployment has a concurrency limit of 1 with the CANCEL_NEW
strategy (a run due while another runs is cancelled, not queued), and the flows hold a lease in
mlrig's store, which a crashed run releases (Prefect's slot may stay taken, shared/FACTS.md).

Parsing (``parse_every``, ``schedule_spec``) is pure; everything else talks to the Prefect API
and imports Prefect inside the function.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from mlrig.config import Settings, parse_duration
from mlrig.errors import ConfigError

if TYPE_CHECKING:
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.deployments.runner import RunnerDeployment
    from prefect.runner import Runner

FLOW_NAMES = {"train": "mlrig-train", "loop": "mlrig-loop"}  # = flows.TRAIN_FLOW, LOOP_FLOW
TAG = "mlrig"
WATCH_S = 2.0  # how often a serving runner checks that its deployment still exists


@dataclass(frozen=True)
class ScheduleSpec:
    """Either an interval or a cron expression (never both)."""

    every: dt.timedelta | None = None
    cron: str | None = None

    def describe(self) -> str:
        return f"cron {self.cron!r}" if self.cron else f"every {_human(self.every)}"

    def poll_seconds(self) -> float:
        """How often the serving runner asks for due runs: a fraction of a short interval
        (so runs start on time), at most Prefect's default 10 s."""
        if self.every is None:
            return 10.0
        return max(0.5, min(10.0, self.every.total_seconds() / 4))


@dataclass(frozen=True)
class RunSummary:
    state: str
    expected: dt.datetime | None  # when it was due
    start: dt.datetime | None
    end: dt.datetime | None


@dataclass(frozen=True)
class DeploymentInfo:
    name: str
    flow: str
    schedule: str
    paused: bool
    pool: str | None
    id: str
    last_runs: list[RunSummary] = field(default_factory=list)


def parse_every(text: str) -> dt.timedelta:
    """``30s``, ``2m``, ``1h``, ``1d`` or combinations (``1h30m``) → a positive timedelta.

    Raises ConfigError naming ``--every``."""
    every = parse_duration(text, "--every")
    if every <= dt.timedelta(0):
        raise ConfigError(f"--every {text!r}: must be longer than 0 s")
    return every


def schedule_spec(every: str | None, cron: str | None) -> ScheduleSpec:
    """The schedule from the command's options: exactly one of ``--every`` and ``--cron``.

    Raises ConfigError naming the option."""
    if (every is None) == (cron is None):
        raise ConfigError("give exactly one of --every (e.g. 2m) and --cron (e.g. '0 3 * * *')")
    if every is not None:
        return ScheduleSpec(every=parse_every(every))
    assert cron is not None
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError as exc:
        raise ConfigError(
            f"--cron {cron!r}: not a cron expression (minute hour day month weekday, "
            f"e.g. '0 3 * * *'): {exc.errors()[0]['msg']}"
        ) from exc
    return ScheduleSpec(cron=cron.strip())


def refuse_secrets(parameters: dict[str, Any]) -> None:
    """Raise ConfigError when a deployment parameter would hold a credential: Prefect keeps
    parameters in its database and shows them in its UI and API. A deployment refers to its
    settings by the config file's path; secrets stay in that file or the environment."""
    from mlrig.pipeline.flows import secret_parameters

    found = secret_parameters(parameters)
    if found:
        raise ConfigError(
            f"schedule parameter {', '.join(found)}: holds a URL with a credential; Prefect "
            "stores and shows deployment parameters, so put it in the config file (passed by "
            "path) or the environment of the process that runs the flow"
        )


def relative_paths(settings: Settings) -> list[str]:
    """Settings holding a relative file path, which a pool's worker would resolve in its own
    working directory (a temporary one unless ``--working-dir``)."""
    source = settings.data.source
    if source and "://" not in source and not source.startswith("/"):
        return [f"data.source {source!r}"]
    return []


def deployment_name(flow_key: str, model_name: str) -> str:
    return f"mlrig-{flow_key}-{model_name}"


def serve(
    flow_key: str,
    name: str,
    spec: ScheduleSpec,
    parameters: dict[str, Any],
    on_ready: Callable[[str], None] | None = None,
) -> str:
    """Register the deployment and run its schedule in this process until the deployment is
    deleted (``stop``), or SIGTERM/Ctrl-C; ``on_ready`` hears the deployment id once it is
    registered. Returns why it ended.

    On Ctrl-C/SIGTERM the schedule is paused (no runs pile up while nobody serves them);
    running this again re-enables it."""
    from prefect.runner import Runner

    from mlrig.pipeline.flows import FLOWS

    refuse_secrets(parameters)
    runner = Runner(
        name=name,
        query_seconds=spec.poll_seconds(),
        prefetch_seconds=spec.poll_seconds(),
        pause_on_shutdown=True,
    )
    deployment_id = runner.add_flow(
        FLOWS[flow_key],
        name=name,
        parameters=parameters,
        tags=[TAG],
        concurrency_limit=_one_at_a_time(),
        entrypoint_type=_module_entrypoint(),
        **_schedule_kwargs(spec),
    )
    if on_ready is not None:
        on_ready(str(deployment_id))
    return asyncio.run(_serve_until_deleted(runner, deployment_id))


async def _serve_until_deleted(runner: Runner, deployment_id: Any) -> str:
    import signal

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    ended = "interrupted"
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def stop(why: str, pause: bool) -> None:
        nonlocal ended
        if runner.stopping or not runner.started:
            return
        ended = why
        runner.pause_on_shutdown = pause
        await runner.astop()

    def on_signal(sig: signal.Signals) -> None:
        task = loop.create_task(stop(f"{sig.name}; schedule paused", True))
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def watch() -> None:
        # Prefect's runner sets a SIGTERM handler that cannot stop it from inside its event
        # loop (the schedule is not paused); this runs after it and replaces it.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        async with get_client() as client:
            while True:
                await asyncio.sleep(WATCH_S)
                try:
                    await client.read_deployment(deployment_id)
                except ObjectNotFound:
                    await stop("deployment deleted", pause=False)  # nothing left to pause
                    return
                except (PrefectHTTPStatusError, httpx.HTTPError):
                    continue  # the server is busy or restarting: ask again

    watcher = asyncio.create_task(watch())
    try:
        await runner.start()
    finally:
        watcher.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return ended


@dataclass(frozen=True)
class PoolDeployment:
    """A deployment registered on a work pool, and what happened to the pool."""

    id: str
    pool: str
    pool_type: str
    pool_created: bool  # the pool was missing and was created (type process)


def deploy_to_pool(
    flow_key: str,
    name: str,
    spec: ScheduleSpec,
    parameters: dict[str, Any],
    pool: str,
    working_dir: str | None = None,
) -> PoolDeployment:
    """Register the deployment on work pool ``pool``; its workers (``prefect worker start
    --pool POOL``, where mlrig is importable) import the flow by module path, so no source
    location is needed, and run it in ``working_dir`` (the job variable of Prefect's process
    workers; it must exist on the worker's host), else in a temporary directory: the home and
    config are passed as absolute paths, relative paths inside the config are not.

    A missing pool is created as a ``process`` pool with Prefect's default job template:
    mlrig's flows need mlrig and the home's files, i.e. a process on a host that has them,
    and a typo is caught by ``mlrig doctor`` (no worker polls the new pool)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    from mlrig.pipeline.flows import FLOWS

    refuse_secrets(parameters)
    created = False
    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            try:
                found = client.create_work_pool(
                    WorkPoolCreate(name=pool, type="process", base_job_template=template)
                )
                created = True
            except ObjectAlreadyExists:  # another command created it meanwhile
                found = client.read_work_pool(pool)
    # Flow.deploy() would also list the pool's workers, a request this server stack refuses
    # (422, see _filter); to_deployment + apply register the same deployment.
    deployment = cast(
        "RunnerDeployment",
        FLOWS[flow_key].to_deployment(
            name,
            parameters=parameters,
            tags=[TAG],
            concurrency_limit=_one_at_a_time(),
            entrypoint_type=_module_entrypoint(),
            work_pool_name=pool,
            job_variables={"working_dir": working_dir} if working_dir else None,
            **_schedule_kwargs(spec),
        ),
    )
    deployment_id = deployment.apply(work_pool_name=pool)
    return PoolDeployment(str(deployment_id), pool, str(found.type), created)


def list_deployments(runs: int = 5) -> list[DeploymentInfo]:
    """The deployments of mlrig's flows with their latest ``runs`` flow runs, newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

    names = list(FLOW_NAMES.values())
    out = []
    with get_client(sync_client=True) as client:
        flows = {
            f["id"]: f["name"]
            for f in _filter(client, "/flows/filter", {"flows": {"name": {"any_": names}}})
        }
        if not flows:
            return []
        found = _filter(
            client, "/deployments/filter", {"flows": {"id": {"any_": list(flows)}}, "limit": 200}
        )
        for d in sorted(map(DeploymentResponse.model_validate, found), key=lambda d: d.name):
            recent = _filter(
                client,
                "/flow_runs/filter",
                {
                    "flow_runs": {
                        "deployment_id": {"any_": [str(d.id)]},
                        "expected_start_time": {"before_": dt.datetime.now(dt.UTC).isoformat()},
                    },
                    "sort": "EXPECTED_START_TIME_DESC",
                    "limit": runs,
                },
            )
            out.append(
                DeploymentInfo(
                    name=d.name,
                    flow=flows.get(str(d.flow_id), "?"),
                    schedule=_describe_schedules(d),
                    paused=bool(d.paused),
                    pool=d.work_pool_name,
                    id=str(d.id),
                    last_runs=[
                        RunSummary(
                            r.state_name or "?", r.expected_start_time, r.start_time, r.end_time
                        )
                        for r in map(FlowRun.model_validate, recent)
                    ],
                )
            )
    return out


def _filter(client: Any, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    # The client's read_flows/read_deployments send every unset filter as null, which this
    # server stack (prefect 3.8.8, fastapi 0.154) answers with 422: send only what is set.
    answer: list[dict[str, Any]] = client.request("POST", path, json=body).json()
    return answer


def pause(name: str) -> DeploymentInfo:
    """Pause the schedule of deployment ``name``: no new scheduled runs (a running one ends)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_name, d = _find(client, name)
        client.pause_deployment(d.id)
    return _info(flow_name, d, paused=True)


def resume(name: str) -> DeploymentInfo:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_name, d = _find(client, name)
        client.resume_deployment(d.id)
    return _info(flow_name, d, paused=False)


def stop(name: str) -> DeploymentInfo:
    """Delete deployment ``name`` (its scheduled runs go with it); a runner serving it in the
    foreground notices within seconds and exits."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_name, d = _find(client, name)
        client.delete_deployment(d.id)
    return _info(flow_name, d, paused=bool(d.paused))


def _find(client: Any, name: str) -> tuple[str, DeploymentResponse]:
    from prefect.exceptions import ObjectNotFound

    for flow_name in FLOW_NAMES.values():
        try:
            return flow_name, client.read_deployment_by_name(f"{flow_name}/{name}")
        except ObjectNotFound:
            continue
    raise ConfigError(
        f"deployment {name!r}: no mlrig schedule of that name on {client.api_url} "
        "(see `mlrig schedule list`)"
    )


def _info(flow_name: str, d: DeploymentResponse, paused: bool) -> DeploymentInfo:
    return DeploymentInfo(
        d.name, flow_name, _describe_schedules(d), paused, d.work_pool_name, str(d.id)
    )


def _one_at_a_time() -> Any:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def _module_entrypoint() -> Any:
    from prefect.deployments.runner import EntrypointType

    return EntrypointType.MODULE_PATH


def _schedule_kwargs(spec: ScheduleSpec) -> dict[str, Any]:
    return {"interval": spec.every} if spec.every is not None else {"cron": spec.cron}


def _describe_schedules(d: DeploymentResponse) -> str:
    shown = []
    for s in d.schedules or []:
        sched: Any = s.schedule
        if getattr(sched, "interval", None) is not None:
            shown.append(f"every {_human(sched.interval)}")
        elif getattr(sched, "cron", None):
            shown.append(f"cron {sched.cron!r}")
        else:
            shown.append(type(sched).__name__)
    return ", ".join(shown) or "none"


def _human(delta: dt.timedelta | None) -> str:
    if delta is None:
        return "?"
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
