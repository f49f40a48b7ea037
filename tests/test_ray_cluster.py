"""The same run as a batch job on a Ray cluster: `ray job submit` to a head we start."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import curate_cmd, doc_set


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    bindir = Path(sys.executable).parent
    ray_cli = shutil.which("ray", path=str(bindir)) or shutil.which("ray")
    port, dash, agent, metrics = _free_port(), _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    # --block: the head's processes live as long as this one and stop with it
    head = subprocess.Popen(
        [ray_cli, "start", "--head", f"--port={port}", f"--dashboard-port={dash}",
         "--dashboard-host=127.0.0.1", "--num-cpus=1", "--include-dashboard=true",
         # the session's own Ray holds the default agent ports on this machine
         f"--dashboard-agent-listen-port={agent}", f"--metrics-export-port={metrics}",
         "--disable-usage-stats", "--block"],
        env=env, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{dash}"
        env["RAY_AUTH_MODE"] = "token"
        deadline = time.time() + 90
        while time.time() < deadline:
            probe = subprocess.run([ray_cli, "job", "list", "--address", url], env=env,
                                   capture_output=True, text=True)
            if probe.returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.fail("the Ray head did not come up:\n" + (tmp_path / "head.log").read_text()[-3000:])
        yield ray_cli, url, env
    finally:
        head.terminate()
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            head.kill()


@pytest.mark.slow
def test_ray_job_submit_gives_the_same_result(ray_head, demo_corpus, demo_run, tmp_path):
    ray_cli, url, env = ray_head
    out = tmp_path / "job-out"
    deadline = time.time() + 90
    while True:
        job = subprocess.run(
            [ray_cli, "job", "submit", "--address", url, "--"] + curate_cmd() +
            ["run", "--input", str(demo_corpus), "--output", str(out)],
            env=env, capture_output=True, text=True, timeout=300)
        # the job agent comes up a little after the dashboard answers
        if "No available agent" not in job.stderr or time.time() > deadline:
            break
        time.sleep(2)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "succeeded" in job.stdout + job.stderr
    assert doc_set(out) == doc_set(demo_run[0])
