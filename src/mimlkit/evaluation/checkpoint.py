"""Resumable evaluation: finished (learner, split) jobs in a JSON-lines file.

``evaluate(..., checkpoint=path)`` appends one line per finished job as results arrive
(one ``write`` of a whole line, flushed and fsync'ed); a rerun with the same path reuses
every successful job whose key matches and runs only the rest. The first line is a header
naming the dataset fingerprint; a checkpoint written for other data is refused (one-line
``ValueError`` naming the file). A line torn by a crash (no final newline, or not valid
JSON) is dropped on reading and cut off before the next append.

A job's key hashes everything that decides its numbers: learner name, class and
parameters, the train/test indices, metrics, convention, label names, the job seed and
whether scores are kept. Jobs that ended in an error are recorded but run again on resume
(a worker that died, a fixed bug).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Checkpoint", "dataset_fingerprint", "job_key", "resume_jobs"]

_FORMAT = "mimlkit-evaluation-checkpoint"
_VERSION = 1


def _hash(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        if isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.data)
        else:
            h.update(json.dumps(p, sort_keys=True, default=repr).encode())
        h.update(b"\0")
    return h.hexdigest()


def dataset_fingerprint(ds: Any) -> str:
    """Hash of a ``MIMLDataset``'s labels, label names, bags and image sources."""
    parts: list[Any] = [ds.Y, list(ds.label_names)]
    if ds.bags is not None:
        parts += [ds.bags.offsets, ds.bags.instances]
    if ds.images is not None:
        parts.append(ds.images.sources)
    return _hash(*parts)


def job_key(name: str, estimator: Any, train: np.ndarray, test: np.ndarray,
            metrics: list[str], label_names: list[str], convention: str, seed: int,
            keep_scores: bool) -> str:
    """Identity of one (learner, split) job (module docstring)."""
    from mimlkit.evaluation.runner import _jsonable

    cls = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
    params = _jsonable(estimator.get_params(deep=False)) if hasattr(estimator, "get_params") \
        else repr(estimator)
    return _hash(name, cls, params, np.asarray(train, np.int64), np.asarray(test, np.int64),
                 list(metrics), list(label_names), convention, int(seed), bool(keep_scores))


def _encode(job: Mapping[str, Any]) -> dict[str, Any]:
    from mimlkit.evaluation.runner import _jsonable

    out = {k: _jsonable(v) for k, v in job.items() if k != "scores"}
    if job.get("scores") is not None:
        out["scores"] = {k: _jsonable(v) for k, v in job["scores"].items()}
    return out


def _nan(v: Any) -> Any:
    if v is None:
        return math.nan
    if isinstance(v, Mapping):
        return {k: _nan(x) for k, x in v.items()}
    return v


def _decode(rec: Mapping[str, Any]) -> dict[str, Any]:
    job = dict(rec["job"])
    for k in ("fit_seconds", "predict_seconds"):
        job[k] = math.nan if job.get(k) is None else float(job[k])
    if job.get("values") is not None:
        job["values"] = {k: _nan(v) for k, v in job["values"].items()}
    if job.get("scores") is not None:
        s = job["scores"]
        job["scores"] = {"test_idx": np.asarray(s["test_idx"], dtype=np.int64),
                         "scores": np.asarray([[math.nan if x is None else x for x in row]
                                               for row in s["scores"]], dtype=float),
                         "y_pred": np.asarray(s["y_pred"], dtype=np.int8)}
    return job


class Checkpoint:
    """Append-only store of finished jobs for one dataset (module docstring)."""

    def __init__(self, path: str | os.PathLike, fingerprint: str) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.n_dropped = 0

    def load(self) -> dict[str, dict[str, Any]]:
        """``{job key: job}`` of the successful jobs on file (the last line of a key wins);
        creates the file with its header when absent; cuts a torn last line."""
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"format": _FORMAT, "version": _VERSION, "dataset": self.fingerprint})
            return {}
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # a crash mid-line: drop the fragment
            cut = raw.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            raw = raw[:cut]
            self.n_dropped += 1
        lines = raw.decode("utf-8", errors="replace").splitlines()
        try:
            head = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            head = None
        if not isinstance(head, dict) or head.get("format") != _FORMAT:
            raise ValueError(f"{self.path}: not a mimlkit evaluation checkpoint (first line "
                             "is no checkpoint header); delete it or choose another path")
        if int(head.get("version", 0)) > _VERSION:
            raise ValueError(f"{self.path}: checkpoint version {head.get('version')} is newer "
                             f"than this mimlkit understands ({_VERSION})")
        if head.get("dataset") != self.fingerprint:
            raise ValueError(f"{self.path}: checkpoint of another dataset (fingerprint "
                             f"{head.get('dataset')}, this one {self.fingerprint}); delete it "
                             "or choose another path")
        done: dict[str, dict[str, Any]] = {}
        for line in lines[1:]:
            try:
                rec = json.loads(line)
                job = _decode(rec)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                self.n_dropped += 1
                continue
            if job.get("error") is None:
                done[rec["key"]] = job
            else:
                done.pop(rec["key"], None)
        return done

    def add(self, key: str, job: Mapping[str, Any]) -> None:
        """Record a finished job (one atomic line)."""
        self._append({"key": key, "job": _encode(job)})

    def _append(self, obj: Mapping[str, Any]) -> None:
        line = (json.dumps(obj, allow_nan=False, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def resume_jobs(checkpoint: Any, ds: Any, jobs: list[tuple], metrics: list[str],
                label_names: list[str], convention: str, keep_scores: bool):
    """(jobs reused from ``checkpoint``, jobs left to run, the callback that records a
    finished job, number reused); all pass-through when ``checkpoint`` is None."""
    if checkpoint is None:
        return [], jobs, None, 0
    store = Checkpoint(checkpoint, dataset_fingerprint(ds))
    done = store.load()
    reused, todo, keys = [], [], {}
    for job in jobs:
        name, est, _kind, s, tr, te, seed = job
        key = job_key(name, est, tr, te, metrics, label_names, convention, seed, keep_scores)
        if key in done and (done[key].get("scores") is not None or not keep_scores):
            reused.append({**done[key], "learner": name, "split": s})
        else:
            keys[(name, s)] = key
            todo.append(job)

    def record(result: dict[str, Any]) -> None:
        store.add(keys[(result["learner"], int(result["split"]))], result)

    return reused, todo, record, len(reused)
