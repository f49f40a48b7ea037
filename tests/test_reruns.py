"""Reruns: a no-op when fresh, a redo when stale, a clean finish after a killed driver."""
import hashlib
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import curate_cmd, doc_set, run_stages
from curate.manifests.manifest import read_rows


def _snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*.parquet"))}


def test_rerun_is_a_noop(ray_address, demo_corpus, demo_run):
    out, first = demo_run
    assert first.stages[0].ran == 6
    before = _snapshot(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    again = run_stages(ray_address, demo_corpus, out, stages=["extract"])
    assert again.stages[0].ran == 0 and again.stages[0].skipped == 6
    assert _snapshot(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == mtimes


def test_changed_setting_makes_extract_stale(ray_address, demo_corpus, tmp_path):
    out = tmp_path / "out"
    run_stages(ray_address, demo_corpus, out, stages=["extract"])
    old = {k: r.fingerprint for k, r in read_rows(out, "extract").items()}
    status = subprocess.run(curate_cmd() + ["status", "--output", str(out), "--config",
                                            str(_write_cfg(tmp_path, demo_corpus, out))],
                            capture_output=True, text=True, check=True).stdout
    assert "stale" in status and " 6 " in status.splitlines()[2]
    changed = run_stages(ray_address, demo_corpus, out, stages=["extract"],
                         extract={"include_tables": False})
    assert changed.stages[0].ran == 6
    new = {k: r.fingerprint for k, r in read_rows(out, "extract").items()}
    assert new.keys() == old.keys() and all(new[k] != old[k] for k in new)
    # --force redoes fresh units
    forced = run_stages(ray_address, demo_corpus, out, stages=["extract"],
                        extract={"include_tables": False}, force=True)
    assert forced.stages[0].ran == 6


def _write_cfg(folder: Path, inp: Path, out: Path) -> Path:
    cfg = folder / "changed.yaml"
    cfg.write_text(f"input: {inp}\noutput: {out}\nextract:\n  include_tables: false\n")
    return cfg


def test_same_inputs_same_outputs(ray_address, demo_corpus, demo_run, tmp_path, monkeypatch):
    """... also with two tasks in flight at a time (the runner refills a window of tasks)."""
    from curate.pipeline.runner import Runner
    monkeypatch.setattr(Runner, "_window", lambda self: 2)
    out, _ = demo_run
    other = tmp_path / "again"
    again = run_stages(ray_address, demo_corpus, other, stages=["extract"])
    assert again.stages[0].ran == 6 and not again.failed
    a, b = _snapshot(out), _snapshot(other)
    shard_keys = [k for k in a if not k.startswith("manifests")]
    assert {k: a[k] for k in shard_keys} == {k: b[k] for k in shard_keys}


@pytest.mark.slow
def test_killed_driver_then_rerun_loses_nothing_and_duplicates_nothing(ray_address, tmp_path):
    """Kill the driver (an embedded-Ray `curate run`) mid-stage, rerun, compare with an
    uninterrupted run."""
    from curate.pipeline.demo_corpus import make_demo_corpus
    corpus = tmp_path / "corpus"
    make_demo_corpus(corpus, seed=7, pages_per_dump=240)    # units of a few seconds each
    reference = tmp_path / "reference"
    run_stages(ray_address, corpus, reference, stages=["extract"])
    out = tmp_path / "out"
    cmd = curate_cmd() + ["run", "--input", str(corpus), "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    manifests = out / "manifests" / "extract"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifests.exists() and len(list(manifests.glob("*.parquet"))) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(manifests.glob("*.parquet")))
    assert 1 <= done_before < 6, "the kill did not land mid-stage"
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    # Workers of the killed driver may finish the unit they hold; the rest is redone.
    assert "already done" in rerun.stderr and "to run" in rerun.stderr
    assert doc_set(out) == doc_set(reference)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
