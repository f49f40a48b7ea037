"""What a data engineer sees and uses (issue 12): the HTML report in a real browser, the
Python API exactly as the README shows it, a filter of one's own, logs and status."""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from conftest import REPO, curate_cmd, read_shards, run_stages
from curate.pipeline.html_report import SECTIONS


# -- a filter of the user's own, defined here: named in the config as test_operability:ShoutFilter

@dataclass
class ShoutFilter:
    """Rejects text whose letters are mostly capitals."""
    name: ClassVar[str] = "shout"
    max_upper_ratio: float = 0.5

    def signal_names(self):
        return ["shout_upper_ratio"]

    def signals(self, doc):
        letters = [c for c in doc.text if c.isalpha()]
        return {"shout_upper_ratio": sum(c.isupper() for c in letters) / max(1, len(letters))}

    def verdict(self, s):
        if s["shout_upper_ratio"] > self.max_upper_ratio:
            return "shout:upper_ratio", f"upper_ratio={s['shout_upper_ratio']:.3f} > {self.max_upper_ratio:g}"
        return None


def test_custom_filter_from_a_module_runs_with_signals_and_reasons(ray_address, tmp_path):
    import gzip
    from conftest import DATA
    dump = tmp_path / "in" / "d"
    dump.mkdir(parents=True)
    gold = json.loads((DATA / "ground-truth.json").read_text())
    texts = [v["articleBody"] for _, v in sorted(gold.items())][:6]
    docs = [{"id": f"n{i}", "text": t} for i, t in enumerate(texts)]
    docs += [{"id": f"s{i}", "text": t.upper()} for i, t in enumerate(texts[:3])]
    (dump / "docs.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    out = tmp_path / "out"
    res = run_stages(ray_address, tmp_path / "in", out, order=["extract", "quality"],
                     quality={"default_filters": ["test_operability:ShoutFilter"],
                              "params": {"test_operability:ShoutFilter": {"max_upper_ratio": 0.6}}})
    assert not res.failed
    rejects = read_shards(out, "quality", "rejects")
    kept = read_shards(out, "quality")
    assert sorted(r["reason"] for r in rejects) == ["shout:upper_ratio"] * 3
    assert all(k["shout_upper_ratio"] < 0.6 for k in kept) and len(kept) == 6


def test_unknown_custom_filter_is_a_config_error():
    from curate.pipeline.config import ConfigError, config_from_dict
    with pytest.raises(ConfigError, match="no_such_module"):
        config_from_dict({"quality": {"default_filters": ["no_such_module:Filter"]}})
    with pytest.raises(ConfigError, match="lacks"):
        config_from_dict({"quality": {"default_filters": ["json:JSONDecoder"]}})


# -- the Python API, exactly as the README shows it ----------------------------------------

def _readme_api_block() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Python API")
    block = text[start:].split("```python", 1)[1].split("```", 1)[0]
    return block


def test_python_api_exactly_as_in_the_readme(ray_address, demo_corpus, tmp_path, monkeypatch):
    code = _readme_api_block()
    monkeypatch.chdir(tmp_path)
    shutil.copytree(demo_corpus, tmp_path / "crawl")
    monkeypatch.setenv("RAY_ADDRESS", ray_address)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["result"].failed == 0
    reasons = dict(scope["reasons"])
    assert reasons and all(isinstance(n, int) for n in reasons.values())
    assert scope["docs"].num_rows == sum(r.docs for r in scope["result"].stages if r.stage == "quality"
                                         for r in r.rows)
    assert (tmp_path / "out" / "report" / "index.html").exists()


# -- the report in a real browser ---------------------------------------------------------

def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def demo_report(ray_address, demo_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    run_stages(ray_address, demo_corpus, out)
    r = subprocess.run(curate_cmd() + ["report", "--output", str(out)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return out


def test_report_renders_in_a_real_browser(demo_report, tmp_path):
    page = demo_report / "report" / "index.html"
    html = page.read_text()
    assert "<script" not in html and "http://" not in html.split("<body>")[0]   # self-contained
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium here (apt-get install chromium); .ci/run installs it")
    shot = tmp_path / "report.png"
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for key, _ in SECTIONS:
        assert f'id="{key}"' in dom.stdout or f"id='{key}'" in dom.stdout, key
    assert dom.stdout.count("<svg") >= 8
    signals = dom.stdout.split('id="signals"')[1] if 'id="signals"' in dom.stdout else dom.stdout.split("id='signals'")[1]
    assert signals.count("threshold") >= 10          # the rules' limits drawn on the signal histograms
    assert "could not be drawn" not in dom.stdout
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1300,5000",
                        f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.stat().st_size > 50_000
    keep = REPO / ".test-artifacts"
    keep.mkdir(exist_ok=True)
    shutil.copy(shot, keep / "report.png")
    for name in ("funnel", "reject_reasons", "dedup_curve", "mix", "tokens", "samples"):
        assert (demo_report / "report" / f"{name}.parquet").exists(), name


def test_report_shows_failed_and_partial_units_first(ray_address, tmp_path):
    from conftest import DATA
    from curate.pipeline.html_report import write_report
    src = DATA / "broken"
    dump = tmp_path / "in" / "CC-MAIN-2024-10"
    dump.mkdir(parents=True)
    for f in sorted(src.glob("*.warc.gz"))[:3]:
        shutil.copy(f, dump / f.name)
    (dump / "empty.warc.gz").write_bytes(b"")
    out = tmp_path / "out"
    run_stages(ray_address, tmp_path / "in", out, order=["extract"])
    html = write_report(out).read_text()
    attention = html.split("id='attention'")[1].split("</section>")[0]
    assert "class='alert'" in attention and "partial" in attention and "empty file" in attention


# -- logs, status, stage order ------------------------------------------------------------

def test_json_log_lines_and_quiet(ray_address, demo_corpus, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(curate_cmd() + ["run", "--input", str(demo_corpus), "--output", str(out), "--until", "langid",
                                       "--address", ray_address, "--log-format", "json", "--no-report"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert {"stage_start", "stage_end", "log"} <= {e["event"] for e in events}
    assert any(e.get("stage") == "extract" and "units" in e.get("message", "") for e in events)
    q = subprocess.run(curate_cmd() + ["run", "--input", str(demo_corpus), "--output", str(out), "--until", "langid",
                                       "--address", ray_address, "--quiet", "--no-report"],
                       capture_output=True, text=True, cwd=REPO)
    assert q.returncode == 0 and "[extract]" not in q.stderr


def test_live_progress_comes_from_inside_running_units_and_stays_in_bounds(ray_address, tmp_path):
    """Bytes read inside units that are still running reach the view (workers report to a
    board the driver polls); per stage, progress never goes back and never passes the
    stage's total, and one stage's reports never count toward the next's."""
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.progress import View
    from curate.pipeline.runner import Runner
    from conftest import DATA

    class Recording(View):
        def __init__(self):
            super().__init__()
            self.totals, self.reports = {}, []

        def log(self, message):
            pass

        def stage_start(self, stage, units, total_bytes):
            self.totals[stage] = total_bytes

        def stage_progress(self, stage, units_done, bytes_done, docs):
            self.reports.append((stage, units_done, bytes_done))

    view = Recording()
    cfg = config_from_dict({"input": str(DATA / "crawl"), "output": str(tmp_path / "out"),
                            "order": ["extract", "langid"]})
    Runner(cfg, address=ray_address, view=view).run()
    for stage, total in view.totals.items():
        seen = [b for st, _, b in view.reports if st == stage]
        assert seen and seen == sorted(seen) and seen[-1] == total and all(b <= total for b in seen), stage
    # before any extract unit finished, the bytes already read inside the running ones
    assert any(st == "extract" and done == 0 and 0 < b < view.totals["extract"] for st, done, b in view.reports)


def test_stage_alone_on_stale_input_says_what_to_run_first(ray_address, demo_corpus, tmp_path):
    out = tmp_path / "out"
    run_stages(ray_address, demo_corpus, out, order=["extract", "langid", "quality"])
    same = tmp_path / "same.yaml"
    same.write_text(f"input: {demo_corpus}\noutput: {out}\norder: [extract, langid, quality]\n")
    r = subprocess.run(curate_cmd() + ["run", "--config", str(same), "--stage", "quality",
                                       "--address", ray_address, "--no-report"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr                       # fresh: nothing to say
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"input: {demo_corpus}\noutput: {out}\norder: [extract, langid, quality]\n"
                   "langid:\n  default_threshold: 0.6\n  thresholds: {en: 0.7, zh: 0.6}\n")
    r = subprocess.run(curate_cmd() + ["run", "--config", str(cfg), "--stage", "quality", "--address", ray_address,
                                       "--no-report"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "curate run --stage langid" in r.stderr, r.stderr


def test_status_after_until_never_calls_finished_stages_missing(ray_address, demo_corpus, tmp_path):
    out = tmp_path / "out"
    run_stages(ray_address, demo_corpus, out)
    r = subprocess.run(curate_cmd() + ["run", "--input", str(demo_corpus), "--output", str(out), "--until", "langid",
                                       "--address", ray_address, "--no-report", "--force"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    status = subprocess.run(curate_cmd() + ["status", "--output", str(out)], capture_output=True, text=True, cwd=REPO)
    lines = {ln.split()[0]: ln.split() for ln in status.stdout.splitlines()[2:] if ln.strip() and ln[0].isalpha()}
    for stage in ("dedup", "quality", "decontaminate", "remix", "tokenize"):
        assert lines[stage][6] == "0", status.stdout          # missing column


def test_query_into_a_closed_pipe_is_quiet(demo_report):
    r = subprocess.run(" ".join(curate_cmd()) + f" query \"SELECT * FROM rejects\" --output {demo_report} "
                       "--format json | head -1", shell=True, capture_output=True, text=True, cwd=REPO)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_installed_package_is_one_namespace():
    code = ("import importlib.util, curate, curate.pipeline.cli; "
            "print([m for m in ('pipeline', 'stages', 'filters', 'manifests', 'tools') "
            "if importlib.util.find_spec(m)]); print(curate.__version__)")
    r = subprocess.run([str(Path(curate_cmd()[0]).with_name("python")) if Path(curate_cmd()[0]).exists()
                        else "python", "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "[]"


def test_estimate_projects_a_run_and_says_what_is_measured(demo_report, demo_corpus, tmp_path):
    r = subprocess.run(curate_cmd() + ["estimate", "--from-run", str(demo_report), "--dumps", "90"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for stage in ("extract", "langid", "dedup", "quality", "remix", "tokenize"):
        assert any(line.startswith(stage) for line in text.splitlines()), stage
    assert "270,000,000,000 records" in text and "core-hours" in text
    assert "dumps of 3,000,000,000 pages reach it" in text and "DeepSeek LLM Table 1" in text
    assert "Measured:" in text and "Extrapolated:" in text
    from curate.pipeline.estimate import measure
    m = measure(demo_report)
    assert m.records == 220 and m.tokens > 0
    assert all(c.cpu_s > 0 for c in m.stages if c.stage in ("extract", "langid", "quality"))
    dedup = next(c for c in m.stages if c.stage == "dedup")
    assert dedup.prepare_cpu_s > 0                       # its global step is measured too
    bad = subprocess.run(curate_cmd() + ["estimate", "--from-run", str(demo_report)], capture_output=True,
                         text=True, cwd=REPO)
    assert bad.returncode == 2 and "--pages" in bad.stderr


# -- a stage of the user's own: order entry test_operability:MinCharsStage -----------------

from curate.pipeline.config import setting as _setting                     # noqa: E402
from curate.pipeline.stage import Stage as _Stage, plan_one_to_one as _plan  # noqa: E402


@dataclass
class MinCharsSettings:
    min_chars: int = _setting(500, "documents shorter than this are rejected")


class MinCharsStage(_Stage):
    name = "min_chars"
    settings_cls = MinCharsSettings
    requires = ("extract",)

    def plan(self, ctx):
        return _plan(self, ctx)

    def process(self, unit, s, sink):
        import pyarrow.parquet as pq
        table = pq.read_table(sink.output / unit.inputs[0].path)
        sink.set_schema(table.schema)
        sink.count_in(table.num_rows)
        keep = [i for i, n in enumerate(table.column("n_chars").to_pylist()) if n >= s.min_chars]
        for i in sorted(set(range(table.num_rows)) - set(keep)):
            row = table.slice(i, 1).to_pylist()[0]
            sink.reject("min_chars:too_short", f"n_chars={row['n_chars']} < {s.min_chars}", row["id"],
                        row["dump"], row["url"])
        import pyarrow as pa
        sink.add_docs(table.take(pa.array(keep, pa.int64())))


def test_custom_stage_from_a_module_runs_in_the_order(ray_address, demo_corpus, tmp_path):
    out = tmp_path / "out"
    res = run_stages(ray_address, demo_corpus, out, order=["extract", "test_operability:MinCharsStage"],
                     min_chars={"min_chars": 800})
    assert [s.stage for s in res.stages] == ["extract", "min_chars"] and not res.failed
    kept, rejects = read_shards(out, "min_chars"), read_shards(out, "min_chars", "rejects")
    assert kept and rejects and all(d["n_chars"] >= 800 for d in kept)
    assert {r["reason"] for r in rejects} == {"min_chars:too_short"}
    saved = json.loads((out / "run-config.json").read_text())
    assert saved["order"] == ["extract", "test_operability:MinCharsStage"]
    status = subprocess.run(curate_cmd() + ["status", "--output", str(out)], capture_output=True, text=True,
                            cwd=REPO, env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parent)})
    assert status.returncode == 0 and "min_chars" in status.stdout, status.stderr
