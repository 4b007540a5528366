"""The runner's Dask path: a client that fails fast, jobs that survive a dead worker.

- ``dask_client(scheduler, n_jobs, connect_timeout)``: a ``distributed.Client`` for an
  address (``ConnectionError`` in one line after ``connect_timeout`` seconds when nothing
  answers), the given ``Client``, or a ``LocalCluster`` of ``n_jobs`` one-thread processes.
- ``run_jobs(calls, client, retries, on_result)``: one task per (learner, split) job, the
  data scattered once; each task may be retried ``retries`` times. When a worker dies the
  scheduler reruns its tasks elsewhere; a task that still fails (e.g. it killed several
  workers: ``KilledWorker``) becomes an error record for that job, and the rest of the run
  goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["dask_client", "run_jobs"]


def dask_client(scheduler: Any, n_jobs: int, connect_timeout: float = 5.0):
    """-> (client, objects to close afterwards)."""
    from mimlkit._extras import require

    require("dask", "dask.distributed", "backend='dask'")
    from dask.distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, []
    if scheduler is None:
        import joblib

        n = max(1, joblib.effective_n_jobs(n_jobs))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
        return client, [cluster, client]
    try:
        client = Client(scheduler, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(f"Dask scheduler {scheduler} is unreachable within "
                              f"{connect_timeout:g} s ({reason})") from None
    return client, [client]


def run_jobs(calls: list[tuple], client: Any, retries: int,
             on_result: Callable[[dict[str, Any]], None]) -> None:
    """Submit ``_run_job(*call)`` for every call; ``on_result`` gets each finished job (or
    an error record for a job whose task failed) as it completes."""
    from dask.distributed import as_completed

    from mimlkit.evaluation.runner import _run_job

    scattered: dict[int, Any] = {}

    def shared(obj: Any) -> Any:  # the inputs and labels go to the workers once
        if id(obj) not in scattered:
            scattered[id(obj)] = client.scatter(obj, broadcast=True, hash=False)
        return scattered[id(obj)]

    futures = {}
    for c in calls:
        args = (c[0], c[1], shared(c[2]), shared(c[3]), *c[4:])
        futures[client.submit(_run_job, *args, retries=int(retries), pure=False)] = c
    for fut in as_completed(list(futures)):
        c = futures[fut]
        try:
            job = fut.result()
        except Exception as exc:  # noqa: BLE001 - the task itself failed (worker deaths)
            job = {"learner": c[0], "split": c[4], "seed": c[10], "values": None,
                   "details": None, "fit_seconds": float("nan"),
                   "predict_seconds": float("nan"), "scores": None,
                   "error": f"{type(exc).__name__}: {exc}".strip()}
        finally:
            fut.release()
        on_result(job)
