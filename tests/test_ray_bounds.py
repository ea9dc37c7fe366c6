"""--workers and --gpus-per-worker are bounded by what the Ray cluster has: refused at once, never a hang."""

from __future__ import annotations

import pytest

from nlptool.errors import UsageError
from nlptool.ray_engine import check_pool


class _FakeRay:
    def __init__(self, **res):
        self.res = res

    def cluster_resources(self):
        return self.res


def test_check_pool_refuses_what_the_cluster_cannot_hold(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = _FakeRay(CPU=3)  # a local Ray: cores + 1 for the reads
    check_pool(local, 2, 0.0)
    with pytest.raises(UsageError, match="room for at most 2 worker"):
        check_pool(local, 99999, 0.0)
    with pytest.raises(UsageError, match="has no GPU"):
        check_pool(local, 1, 0.5)
    with pytest.raises(UsageError, match="needs 2 GPUs"):
        check_pool(_FakeRay(CPU=8, GPU=1), 4, 0.5)
    check_pool(_FakeRay(CPU=8, GPU=2), 4, 0.5)
    monkeypatch.setenv("RAY_ADDRESS", "ray://cluster:10001")  # a cluster's CPUs are all the workers'
    check_pool(_FakeRay(CPU=4), 4, 0.0)


@pytest.mark.slow
def test_the_cli_refuses_an_impossible_pool_at_once(tmp_path, dict_path):
    pytest.importorskip("ray")
    from typer.testing import CliRunner

    from nlptool.cli import app

    src = tmp_path / "in.txt"
    src.write_text("我爱北京\n天安门\n", encoding="utf-8")
    for extra, why in ((["--workers", "99999"], "--workers 99999"), (["--gpus-per-worker", "0.5"], "no GPU")):
        r = CliRunner().invoke(app, ["tokenize-sample", str(src), "--dict", dict_path, "--engine", "ray", "-q", *extra])
        assert r.exit_code == 2, r.output
        assert why in r.stderr
    r = CliRunner().invoke(app, ["tokenize-sample", str(src), "--shard", "", "-q"])
    assert r.exit_code == 2
