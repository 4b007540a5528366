"""Shared training loop: fitting, early stopping, checkpoints, bitwise resume, DDP (gloo)."""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mimlkit.deep.trainer import EpochSampler, Trainer, TrainingTask  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


class _Task(TrainingTask):
    """Tiny MLP with dropout (uses the global RNG) and a curriculum counter in extra state."""

    def __init__(self, d=5, c=3, fail_at_epoch=None):
        super().__init__()
        torch.manual_seed(123)
        self.model = nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, c))
        self.fail_at_epoch = fail_at_epoch
        self.seen = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen += len(x)
        return nn.functional.binary_cross_entropy_with_logits(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        return {"loss": nn.functional.binary_cross_entropy_with_logits(self.model(x), y)}

    def on_epoch_start(self, epoch, trainer):
        if self.fail_at_epoch is not None and epoch == self.fail_at_epoch:
            raise KeyboardInterrupt("simulated kill")

    def get_extra_state(self):
        return {"seen": self.seen}

    def set_extra_state(self, state):
        self.seen = state["seen"]


def _data(n=40, d=5, c=3, seed=0):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d)).astype(np.float32)
    W = g.normal(size=(d, c))
    Y = (X @ W + 0.3 * g.normal(size=(n, c)) > 0).astype(np.float32)
    return torch.from_numpy(X), torch.from_numpy(Y)


def test_fit_reduces_loss_and_writes_history(tmp_path):
    X, Y = _data()
    task = _Task()
    tr = Trainer(max_epochs=8, lr=0.05, batch_size=8, progress=False, device="cpu",
                 checkpoint_dir=tmp_path)
    tr.fit(task, (X, Y), (X, Y))
    losses = [h["train_loss"] for h in tr.history]
    assert len(losses) == 8 and losses[-1] < losses[0]
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist["epochs"]) == 8 and "val_loss" in hist["epochs"][0]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # atomic writes


def test_early_stopping_and_restore_best():
    X, Y = _data()
    task = _Task()
    # monitor a metric that never improves after epoch 0 -> stops after patience epochs
    tr = Trainer(max_epochs=20, lr=0.05, batch_size=8, progress=False, device="cpu",
                 early_stopping_patience=2, monitor="val_bad", monitor_mode="max")
    task.validation_epoch_end = lambda outs: {"val_bad": 1.0}
    tr.fit(task, (X, Y), (X, Y))
    assert len(tr.history) == 3 and tr.best_epoch == 0


def _weights(task):
    return {k: v.clone() for k, v in task.state_dict().items() if torch.is_tensor(v)}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_is_bitwise_equal(tmp_path, optimizer):
    X, Y = _data()
    kw = dict(lr=0.05, batch_size=8, progress=False, device="cpu", optimizer=optimizer,
              scheduler="step:1:0.5", seed=7, deterministic=True)
    full = _Task()
    Trainer(max_epochs=3, **kw).fit(full, (X, Y), (X, Y))

    # killed at the start of epoch 1 (after epoch 0's checkpoint), then resumed to 3 epochs
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        Trainer(max_epochs=3, checkpoint_dir=ck, **kw).fit(_Task(fail_at_epoch=1), (X, Y),
                                                           (X, Y))
    resumed = _Task()
    with torch.no_grad():  # scramble: the checkpoint must overwrite everything
        for p in resumed.parameters():
            p.add_(1.0)
    tr = Trainer(max_epochs=3, checkpoint_dir=ck, resume=True, **kw)
    tr.fit(resumed, (X, Y), (X, Y))
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.seen == full.seen
    assert [h["epoch"] for h in tr.history] == [0, 1, 2]

    # the same via max_epochs=1 then resume to 3
    ck2 = tmp_path / "ck2"
    Trainer(max_epochs=1, checkpoint_dir=ck2, **kw).fit(_Task(), (X, Y), (X, Y))
    t2 = _Task()
    Trainer(max_epochs=3, checkpoint_dir=ck2, resume=True, **kw).fit(t2, (X, Y), (X, Y))
    for k, v in _weights(t2).items():
        assert torch.equal(a[k], v), k


def test_sampler_shards_one_schedule():
    s0 = EpochSampler(10, seed=3, rank=0, world_size=2)
    s1 = EpochSampler(10, seed=3, rank=1, world_size=2)
    g = EpochSampler(10, seed=3).global_indices(4)
    assert np.array_equal(np.sort(np.r_[s0.indices(4), s1.indices(4)]), np.arange(10))
    assert np.array_equal(s0.indices(4), g[0::2])
    assert not np.array_equal(s0.global_indices(4), s0.global_indices(5))
    s0.set_weights(np.r_[np.zeros(9), 1.0], num_samples=6)
    assert np.all(s0.indices(0) == 9) and len(s0.indices(0)) == 3
    with pytest.raises(ValueError):
        s0.set_weights(np.zeros(10))


def test_map_style_dataset_and_predict():
    X, Y = _data(n=20)
    ds = torch.utils.data.TensorDataset(X, Y)
    task = _Task()
    task.predict_step = lambda batch, i: task.model(batch[0])
    tr = Trainer(max_epochs=2, batch_size=6, progress=False, device="cpu")
    tr.fit(task, ds)
    out = tr.predict(task, (X,), batch_size=7)
    assert out.shape == (20, 3) and torch.isfinite(out).all()


_DDP_SCRIPT = textwrap.dedent("""
    import os, sys
    import torch
    from torch import nn
    sys.path.insert(0, {src!r})
    from mimlkit.deep.trainer import Trainer, TrainingTask
    torch.set_num_threads(1)

    class T(TrainingTask):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
        def training_step(self, batch, i):
            x, y = batch
            return nn.functional.mse_loss(self.model(x), y)

    g = torch.Generator().manual_seed(1)
    X = torch.randn(32, 4, generator=g)
    Y = torch.randn(32, 2, generator=g)
    bs = int(sys.argv[2])
    task = T()
    tr = Trainer(max_epochs=1, lr=0.1, optimizer="sgd", momentum=0.0, batch_size=bs,
                 progress=False, device="cpu", seed=5)
    tr.fit(task, (X, Y))
    rank = int(os.environ.get("RANK", 0))
    torch.save({{k: v for k, v in task.model.state_dict().items()}},
               os.path.join(sys.argv[1], f"w{{rank}}_ws{{tr.world_size}}.pt"))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_gloo(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(_DDP_SCRIPT.format(src=str(SRC)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC)}
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--nnodes=1",
           "--master-addr=127.0.0.1", f"--master-port={port}", str(script), str(tmp_path), "4"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    w0 = torch.load(tmp_path / "w0_ws2.pt")
    w1 = torch.load(tmp_path / "w1_ws2.pt")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k  # ranks agree exactly
    # one process with the global batch (2 x 4) follows the same schedule
    old_argv = sys.argv
    try:  # in-process (no torchrun variables here): saves a second interpreter start
        sys.argv = [str(script), str(tmp_path), "8"]
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old_argv
    ws = torch.load(tmp_path / "w0_ws1.pt")
    for k in w0:
        assert torch.allclose(w0[k], ws[k], atol=1e-5), k


def test_cpu_bf16_autocast_and_global_state_restored():
    X, Y = _data()
    det = torch.are_deterministic_algorithms_enabled()
    tr = Trainer(max_epochs=2, lr=0.05, batch_size=8, progress=False, device="cpu", amp="bf16")
    tr.fit(_Task(), (X, Y))
    assert all(np.isfinite(h["train_loss"]) for h in tr.history)
    assert torch.are_deterministic_algorithms_enabled() == det
    with pytest.raises(ValueError):
        Trainer(max_epochs=1, optimizer="nope", progress=False, device="cpu").fit(_Task(),
                                                                                 (X, Y))
