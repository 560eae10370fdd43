"""N replicas of the engine as Ray actors behind the one HTTP front end of ``llmcore serve``.

The pool stands where the server's ``Batcher`` stands (``create_app(..., engine=pool)``): a
handler's job goes to the replica ``routing.choose_replica`` picks, and a relay thread hands the
replica's events to the handler as they come. Each replica batches its own slots continuously.

Faults: a replica whose process or node dies fails the relay's wait at once (Ray notices the
broken connection, ~2 s). A job that had not yet emitted anything is sent to another replica; one
that had gets a 503 error event, never a hang. The dead replica leaves the routing, Ray restarts
its actor (``max_restarts``), and it rejoins once it has loaded the model again."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from llmcore.errors import LLMCoreError
from llmcore.server.batcher import ErrorEvent, Event, Job, SlotAction, TokenEvent
from llmcore.server.errors import APIError
from llmcore.server.metrics import Metrics
from llmcore_ray import cluster
from llmcore_ray_serve.replica import RemoteError, Replica
from llmcore_ray_serve.routing import ReplicaLoad, choose_replica

log = logging.getLogger("llmcore.server")

#: how often Ray starts a dead replica again (each start reloads the model); -1 would be forever
MAX_RESTARTS = 3
#: how long a replica may take to load its model before the server gives up starting
START_TIMEOUT_S = 600.0
_RESTART_POLL_S = 0.5


def _nowhere(event: Event) -> None:
    """A job's ``emit`` while it travels: the replica sets its own."""


@dataclasses.dataclass
class _ReplicaHandle:
    load: ReplicaLoad
    actor: Any
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    state: str = "starting"  # starting, alive, restarting, dead
    metrics: Metrics = dataclasses.field(default_factory=Metrics)  # its counters, as last read
    retired: Metrics = dataclasses.field(default_factory=Metrics)  # the counters of its processes that died


class ReplicaPool:
    """``n_replicas`` engines, each ``LLM(**options)`` with ``n_parallel`` slots, as Ray actors of one
    CPU each on the cluster at ``address`` (None: a private local Ray instance). The constructor
    returns once every replica has loaded its model."""

    def __init__(self, options: dict[str, Any], n_replicas: int, n_parallel: int, *, address: str | None = None,
                 batcher_options: dict[str, Any] | None = None, lora_scales: Sequence[float] = ()) -> None:
        import ray

        if n_replicas < 1:
            raise LLMCoreError(f"--replicas must be at least 1, got {n_replicas}")
        self.n_parallel = n_parallel
        self.lora_scales = list(lora_scales)
        self._own_ray = address is None
        if address is None:
            ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False, configure_logging=False)
        else:
            cluster.connect(address)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < n_replicas:
            self._shutdown_ray()
            raise LLMCoreError(f"--replicas {n_replicas} needs {n_replicas} CPUs in the Ray cluster (one per replica); "
                               f"it has {cpus}")
        actor_class = ray.remote(Replica).options(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=0,
                                                  max_concurrency=4 * n_parallel + 8, scheduling_strategy="SPREAD")
        # each replica computes with the one CPU Ray reserves for it, unless -t says otherwise
        options = {**options, "n_threads": options.get("n_threads") or 1, "ray": None}
        self._replicas = [_ReplicaHandle(ReplicaLoad(i, n_parallel),
                                         actor_class.remote(options, n_parallel, batcher_options or {}))
                          for i in range(n_replicas)]
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._running: dict[int, tuple[_ReplicaHandle, int]] = {}  # id(job) -> where it runs
        try:
            infos = ray.get([r.actor.ready.remote() for r in self._replicas], timeout=START_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - a model that fails to load, a timeout: one line
            self.stop()
            raise LLMCoreError(f"--replicas: a replica did not start: {_first_line(error)}") from None
        for replica, info in zip(self._replicas, infos):
            replica.info, replica.state = info, "alive"
        self.n_ctx_slot: int = infos[0]["n_ctx_slot"]

    # -- the Batcher's interface, as create_app uses it -------------------------------------------

    def start(self) -> None:
        """Nothing to do: the replicas started with the pool."""

    def stop(self) -> None:
        import ray

        for replica in self._replicas:
            ray.kill(replica.actor, no_restart=True)
        self._shutdown_ray()

    def shut_down(self) -> None:
        """Every replica ends its jobs at its next step (the relays pass the last events on)."""
        for replica in self._replicas:
            if replica.state == "alive":
                replica.actor.shut_down.remote()

    def submit(self, job: Job | SlotAction) -> None:
        if isinstance(job, SlotAction):
            job.done.set_exception(APIError(501, "slot save, restore and erase are not supported with --replicas"))
            return
        if job.lora is None:
            job.lora = list(self.lora_scales)
        threading.Thread(target=self._relay, args=(job,), name="llmcore-replica-relay", daemon=True).start()

    def cancel(self, job: Job) -> None:
        job.cancelled = True
        with self._lock:
            running = self._running.get(id(job))
        if running is not None:
            replica, key = running
            replica.actor.cancel.remote(key)

    def health(self) -> dict[str, Any]:
        """``/health``: ok while a replica serves; each replica's state, process and node."""
        replicas = [{"id": r.load.index, "state": r.state, **{k: r.info.get(k) for k in ("host", "pid")}}
                    for r in self._replicas]
        if any(r.state == "alive" for r in self._replicas):
            return {"status": "ok", "replicas": replicas}
        return {"status": "error", "error": "no replica is alive", "replicas": replicas}

    def slot_states(self) -> list[dict[str, Any]]:
        """``/slots``: the slots of the replicas alive now, numbered across the pool, each with its
        replica's index."""
        import ray

        alive = [r for r in self._replicas if r.state == "alive"]
        states = []
        for replica, ref in zip(alive, [r.actor.slot_states.remote() for r in alive]):
            try:
                slots = ray.get(ref, timeout=5)
            except Exception:  # noqa: BLE001 - died since: its relays report it; list what is left
                continue
            for slot in slots:
                states.append({**slot, "id": replica.load.index * self.n_parallel + slot["id"],
                               "replica": replica.load.index})
        return states

    def render_metrics(self) -> str:
        """``/metrics``: the replicas' counters summed, a replica's that died as last read (so that
        they never go down), and the gauges of the replicas alive summed."""
        import ray

        alive = [r for r in self._replicas if r.state == "alive"]
        gauges = {"requests_processing": 0, "requests_deferred": 0, "kv_cache_tokens": 0, "kv_cache_size": 0}
        for replica, ref in zip(alive, [r.actor.metrics_state.remote() for r in alive]):
            try:
                replica.metrics, state = ray.get(ref, timeout=5)
            except Exception:  # noqa: BLE001 - died since: its relays report it; count what was read
                continue
            for name, value in state.items():
                gauges[name] += value
        total = Metrics()
        for replica in self._replicas:
            total.add(replica.metrics)
            total.add(replica.retired)
        return total.render(**gauges)

    # -- relaying a job -------------------------------------------------------------------------

    def _relay(self, job: Job) -> None:
        """Run ``job`` on a replica and pass its events on; see the module's docstring for faults."""
        from ray.exceptions import RayActorError

        travelling = dataclasses.replace(job, emit=_nowhere, cancelled=False)
        tried: set[int] = set()
        while True:
            replica = self._choose(job, frozenset(tried))
            if replica is None:
                _emit(job, ErrorEvent(APIError(503, "no replica is alive to take the request" if not tried else
                                               "the replica holding the request died and no other is alive")))
                return
            if job.id_slot >= 0:
                travelling.id_slot = job.id_slot % self.n_parallel
            key = next(self._keys)
            emitted = False
            with self._lock:
                self._running[id(job)] = (replica, key)
            if job.cancelled:  # the client left before the job was placed
                replica.actor.cancel.remote(key)
            try:
                for ref in replica.actor.stream.remote(key, travelling):
                    event = _local_event(_get(ref))
                    emitted = True
                    _emit(job, event)
                return
            except RayActorError as error:
                self._lost(replica, error)
                if emitted or job.cancelled:
                    _emit(job, ErrorEvent(APIError(503, f"replica {replica.load.index} died mid-reply "
                                                        f"({type(error).__name__}); the reply is incomplete")))
                    return
                tried.add(replica.load.index)  # nothing was sent yet: the next replica starts it afresh
            finally:
                with self._lock:
                    self._running.pop(id(job), None)
                    replica.load.in_flight -= 1

    def _choose(self, job: Job, exclude: frozenset[int]) -> _ReplicaHandle | None:
        """The replica for ``job`` (counted in flight from now on): the one holding the slot it asks
        for by its pool-wide number, else the router's pick."""
        loads = [r.load for r in self._replicas]
        with self._lock:
            wanted = job.id_slot // self.n_parallel if job.id_slot >= 0 else None
            if wanted is not None and wanted < len(loads) and loads[wanted].alive and wanted not in exclude:
                load: ReplicaLoad | None = loads[wanted]
            else:
                load = choose_replica(loads, job.prompt_tokens, exclude=exclude)
            if load is None:
                return None
            load.in_flight += 1
            if job.cache_prompt:
                load.remember(job.prompt_tokens)
            return self._replicas[load.index]

    def _lost(self, replica: _ReplicaHandle, error: Exception) -> None:
        """Take ``replica`` out of the routing and wait, in the background, for Ray to restart it."""
        with self._lock:
            if replica.state != "alive":
                return
            replica.state, replica.load.alive = "restarting", False
            replica.load.recent.clear()  # a restarted replica's caches are empty
        log.warning("replica %d (%s pid %s) is gone: %s; Ray restarts it", replica.load.index,
                    replica.info.get("host"), replica.info.get("pid"), _first_line(error))
        threading.Thread(target=self._await_restart, args=(replica,), name="llmcore-replica-restart",
                         daemon=True).start()

    def _await_restart(self, replica: _ReplicaHandle) -> None:
        import ray
        from ray.exceptions import ActorUnavailableError

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                info = ray.get(replica.actor.ready.remote(), timeout=max(deadline - time.monotonic(), 1))
                break
            except ActorUnavailableError:  # still restarting: Ray answers at once rather than queueing the call
                time.sleep(_RESTART_POLL_S)
            except Exception as error:  # noqa: BLE001 - restarts used up, no node to run on, the cluster gone
                replica.state = "dead"
                log.warning("replica %d will not come back: %s", replica.load.index, _first_line(error))
                return
        with self._lock:
            replica.info, replica.state, replica.load.alive = info, "alive", True
            replica.retired.add(replica.metrics)  # the new process counts from 0
            replica.metrics = Metrics()
        log.warning("replica %d is back (%s pid %s)", replica.load.index, info.get("host"), info.get("pid"))

    def _shutdown_ray(self) -> None:
        import ray

        if self._own_ray:
            ray.shutdown()


def _get(ref: Any) -> Any:
    import ray

    return ray.get(ref)


def _local_event(event: Event | RemoteError) -> Event:
    if isinstance(event, RemoteError):
        return ErrorEvent(APIError(event.status, event.message, param=event.param, type=event.type))
    return event


def _emit(job: Job, event: Event) -> None:
    if job.cancelled and isinstance(event, TokenEvent):
        return
    try:
        job.emit(event)
    except RuntimeError:  # the handler's event loop is closed: nobody is listening any more
        job.cancelled = True


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

