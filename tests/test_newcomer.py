"""What a new user hits first (issue 19): the README's commands, stopping a run, a wrong
--input, a written config, remix's copies, noise, Chinese kept as Chinese."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, curate_cmd


def _readme_command(heading: str) -> str:
    """The first ```bash block after the README line that names it (as .ci/run reads it)."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(heading):]
    return after.split("```bash", 1)[1].split("```", 1)[0].strip()


def test_ci_runs_the_readme_commands_read_from_the_readme():
    setup = _readme_command("**Set up and run")
    tests = _readme_command("**Run the tests**")
    assert "python3 -m venv" in setup and "pip install" in setup and "curate demo" in setup
    assert "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text()
    # .ci/run reads both from the README; it keeps no copy that could drift from it
    assert "README.md" in ci and setup not in ci and "pip install" not in ci
    function = ci[ci.index("readme_command() {"):ci.index("\n}\n") + 3]
    script = (f"cd {REPO}\n{function}\nreadme_command '**Set up and run'; echo ---; "
              "readme_command '**Run the tests**'")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"{setup}\n---\n{tests}"


def test_no_dependency_that_makes_pip_backtrack():
    # s3fs pins aiobotocore, which pins botocore narrowly: pip 23.2.1 (what `python3 -m venv`
    # ships) backtracks through dozens of versions and fails on a fresh machine
    import tomllib
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].split("[")[0].strip().lower()
             for d in meta["dependencies"] + sum(meta["optional-dependencies"].values(), [])]
    assert not {"s3fs", "aiobotocore"} & set(names)


def test_version():
    out = subprocess.run(curate_cmd() + ["--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("curate ")


# -- stopping a run ---------------------------------------------------------------------------

def _start_run(corpus, out, *extra, env=None):
    return subprocess.Popen(curate_cmd() + ["run", "--input", str(corpus), "--output", str(out),
                                            "--no-report", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True, env=env)


def _read_until(proc, marker: str, timeout: float = 120) -> list[str]:
    lines, t0 = [], time.monotonic()
    for line in proc.stdout:
        lines.append(line)
        if marker in line or time.monotonic() - t0 > timeout:
            break
    return lines


@pytest.mark.slow
def test_ctrl_c_and_sigterm_stop_cleanly_and_a_rerun_finishes(ray_address, demo_corpus, tmp_path):
    out = tmp_path / "out"
    # Ctrl-C in a terminal: SIGINT to the whole process group (embedded Ray included)
    proc = _start_run(demo_corpus, out)
    seen = _read_until(proc, "[extract] 1/")
    assert any("[extract] 1/" in s for s in seen), "".join(seen)
    os.killpg(proc.pid, signal.SIGINT)
    err, _ = proc.communicate(timeout=120)
    rest = ""
    assert proc.returncode == 130, err
    assert "Traceback" not in err + rest and "KeyboardInterrupt" not in err
    assert "interrupted by SIGINT" in err and "stage extract" in err
    assert "`curate run` with the same arguments" in err

    # a scheduler's SIGTERM to the driver alone, connected to a cluster
    proc = _start_run(demo_corpus, out, "--address", ray_address)
    _read_until(proc, "to run")
    os.kill(proc.pid, signal.SIGTERM)
    err, _ = proc.communicate(timeout=120)
    rest = ""
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM received" not in err + rest and "PC: @" not in err
    assert "interrupted by SIGTERM" in err and "during stage" in err

    # the lock was released: the rerun takes the folder without waiting and finishes
    done = subprocess.run(curate_cmd() + ["run", "--input", str(demo_corpus), "--output", str(out),
                                          "--no-report"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    status = subprocess.run(curate_cmd() + ["status", "--output", str(out)], capture_output=True, text=True)
    assert "missing" not in status.stdout.split("\n", 2)[-1] or " 0 missing" in status.stdout, status.stdout


@pytest.mark.slow
def test_a_closed_pipe_stops_an_unfinished_run_with_an_error(ray_address, demo_corpus, tmp_path):
    # `curate run ... 2>&1 | head -1` exited 0 with 2 of 6 extract units done
    out = tmp_path / "out"
    proc = _start_run(demo_corpus, out, "--address", ray_address)
    proc.stdout.readline()
    proc.stdout.close()
    proc.wait(timeout=300)
    assert proc.returncode == 141
    status = subprocess.run(curate_cmd() + ["status", "--output", str(out)], capture_output=True, text=True)
    assert status.returncode == 0
    finished = [line.split()[1:3] for line in status.stdout.splitlines() if line.startswith("tokenize")]
    assert not finished or finished[0][0] != finished[0][1], status.stdout    # the run did not finish


@pytest.mark.slow
def test_a_finished_run_into_a_closed_stdout_exits_0_and_writes_its_report(ray_address, demo_corpus, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(curate_cmd() + ["run", "--input", str(demo_corpus), "--output", str(out),
                                            "--address", ray_address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()             # nothing is read: stdout gets only the summary, at the end
    err = proc.stderr.read()
    proc.wait(timeout=600)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and (out / "report" / "index.html").exists()


# -- a wrong --input, a written config, a typo in --output -------------------------------------

def test_input_one_level_too_high_names_the_dump_folder(tmp_path):
    from conftest import DATA
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.runner import plan_pipeline
    from curate.stages.extract import InputError
    with pytest.raises(InputError, match=r"Give --input \S*crawl\b"):
        plan_pipeline(config_from_dict({"input": str(DATA), "output": str(tmp_path / "o")}))
    # the same through the command: exit 2, nothing written
    res = subprocess.run(curate_cmd() + ["run", "--input", str(DATA), "--output", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "crawl/ holds CC-MAIN-2024-10/" in res.stderr, res.stderr
    assert not (tmp_path / "o").exists()
    # sub-folders with no readable files but dump folders below them: the strict case
    (tmp_path / "top" / "crawls" / "CC-MAIN-2024-10").mkdir(parents=True)
    (tmp_path / "top" / "crawls" / "CC-MAIN-2024-10" / "a.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(InputError, match="crawls/ holds CC-MAIN-2024-10/"):
        plan_pipeline(config_from_dict({"input": str(tmp_path / "top"), "output": str(tmp_path / "o")}))


def test_written_config_keeps_defaults_that_follow_other_keys_open(tmp_path):
    from curate.pipeline.config import describe_defaults, load_config
    text = describe_defaults()
    for key in ("prefilter", "prefilter_languages", "vocab_size", "model_vocab_size"):
        line = next(l for l in text.splitlines() if l.startswith(f"  {key}:"))
        assert line.split("#")[0].strip() == f"{key}: null" and "depends on other keys" in line, line
    written = tmp_path / "curate.yaml"
    written.write_text(text.replace('preset: "deepseek-llm"', 'preset: "deepseek-v3"'))
    tok = load_config(written).settings("tokenize")
    assert (tok.preset, tok.vocab_size, tok.model_vocab_size) == ("deepseek-v3", 128_000, 129_280)
    written.write_text(text)
    cfg = load_config(written)
    assert cfg.settings("extract").prefilter is True and cfg.settings("tokenize").vocab_size == 100_000
    import re
    written.write_text(re.sub(r"(?m)^order: .*$", 'order: ["extract", "dedup"]', text))
    assert load_config(written).settings("extract").prefilter is False      # no langid in the order


def test_status_of_a_folder_with_no_run_says_so(tmp_path):
    res = subprocess.run(curate_cmd() + ["status", "--output", str(tmp_path / "typo")], capture_output=True, text=True)
    assert res.returncode == 2 and "typo has no manifests" in res.stderr, res.stderr
    assert "no input folder" not in res.stderr


# -- noise and loose ends -------------------------------------------------------------------------

def test_rejects_from_the_api_raise_no_warning(demo_run):
    import warnings
    import curate
    out, _ = demo_run
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = curate.open(out).rejects("extract")
        assert table.num_rows > 0 and curate.open(out).rejects().num_rows == table.num_rows


def test_budget_share_reads_as_a_share_or_a_multiple():
    from curate.pipeline.estimate import budget_share
    assert budget_share(6.72e13, 2e12) == "33.6x the 2e+12-token budget"
    assert budget_share(5e11, 2e12) == "25.0% of the 2e+12-token budget"


@pytest.mark.slow
def test_estimate_on_a_sample_removes_its_temporary_run_and_says_so(ray_address, demo_corpus, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    r = subprocess.run(curate_cmd() + ["estimate", "--input", str(demo_corpus), "--dumps", "90",
                                       "--address", ray_address], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "removed once measured" in r.stderr and "budget" in r.stdout
    assert not list(tmp_path.glob("curate-estimate-*"))


def test_an_interrupt_that_ray_wraps_still_stops_the_run_cleanly(monkeypatch, tmp_path):
    """A SIGINT that lands inside ray.wait comes out of Ray's CoreWorker.wait as a
    SystemError caused by our Interrupted (CI saw exit 1 and a traceback): still exit 130."""
    import signal as signals

    from curate.pipeline import cli
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.interrupt import Interrupted
    from curate.pipeline.progress import View
    from curate.pipeline.runner import Runner

    def wrapped(self, **kw):
        self.stage_now = "extract"
        try:
            raise Interrupted(signals.SIGINT)
        except Interrupted as exc:
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from exc
    monkeypatch.setattr(Runner, "run", wrapped)
    cfg = config_from_dict({"input": str(tmp_path), "output": str(tmp_path / "out")})
    with pytest.raises(cli.RunStopped) as stopped:
        cli._run_pipeline(cfg, None, View(), "curate run")
    assert stopped.value.code == 130 and "during stage extract" in str(stopped.value)
    monkeypatch.setattr(Runner, "run", lambda self, **kw: (_ for _ in ()).throw(ValueError("a real bug")))
    with pytest.raises(ValueError):
        cli._run_pipeline(cfg, None, View(), "curate run")
