"""The command line: query views, plain duckdb on the same files, config errors."""
import csv
import io
import json
import subprocess

import duckdb
import pytest

from conftest import curate_cmd
from curate.pipeline.config import ConfigError, config_from_dict, load_config


def _curate(*args, check=True):
    proc = subprocess.run(curate_cmd() + list(args), capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_query_views_answer(crawl_extract):
    out, _ = crawl_extract
    res = _curate("query", "SELECT stage, status, count(*) AS units, sum(docs) AS docs FROM shards "
                  "WHERE stage = 'extract' GROUP BY ALL", "--output", str(out), "--format", "json")
    rows = json.loads(res.stdout)
    assert rows == [{"stage": "extract", "status": "done", "units": 6, "docs": rows[0]["docs"]}]
    res = _curate("query", "SELECT reason, count(*) AS n FROM rejects GROUP BY reason ORDER BY n DESC",
                  "--output", str(out), "--format", "csv")
    reasons = {r["reason"]: int(r["n"]) for r in csv.DictReader(io.StringIO(res.stdout))}
    assert reasons["extract:not_html"] > 0
    res = _curate("query", "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM docs_extract",
                  "--output", str(out))
    assert "(1 row)" in res.stdout
    n = int(res.stdout.splitlines()[2].split()[0])
    assert n == rows[0]["docs"]


def test_plain_duckdb_reads_the_same_files(crawl_extract):
    out, _ = crawl_extract
    con = duckdb.connect()
    n_docs = con.execute(f"SELECT count(*) FROM read_parquet('{out}/extract/*/*.parquet')").fetchone()[0]
    n_rej = con.execute(f"SELECT count(*) FROM read_parquet('{out}/rejects/extract/*/*.parquet')").fetchone()[0]
    m = con.execute(f"SELECT sum(docs), sum(rejected) FROM read_parquet('{out}/manifests/*/*.parquet') "
                    "WHERE stage = 'extract'").fetchone()
    assert (n_docs, n_rej) == m


def test_query_errors_are_clear(crawl_extract, tmp_path):
    out, _ = crawl_extract
    bad = _curate("query", "SELECT nope FROM shards", "--output", str(out), check=False)
    assert bad.returncode == 2 and "query error" in bad.stderr and "nope" in bad.stderr
    none = _curate("query", "SELECT 1", "--output", str(tmp_path / "nothing"), check=False)
    assert none.returncode == 2 and "no manifests" in none.stderr


def test_config_unknown_key_is_named_with_a_suggestion(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("extract:\n  max_html_byte: 10\n")
    with pytest.raises(ConfigError, match=r"extract\.max_html_byte.*did you mean 'max_html_bytes'"):
        load_config(cfg)
    with pytest.raises(ConfigError, match=r"unknown key 'extrakt'"):
        config_from_dict({"extrakt": {}})
    with pytest.raises(ConfigError, match=r"extract\.timeout_s: expected a number"):
        config_from_dict({"extract": {"timeout_s": "fast"}})
    with pytest.raises(ConfigError, match=r"extract\.max_html_bytes: must be a finite number in \(0, inf\)"):
        config_from_dict({"extract": {"max_html_bytes": 0}})
    with pytest.raises(ConfigError, match=r"order: unknown stage 'extractt'"):
        config_from_dict({"order": ["extractt"]})
    run = _curate("run", "--config", str(cfg), "--input", str(tmp_path), check=False)
    assert run.returncode == 2 and "max_html_byte" in run.stderr


def test_yaml_and_toml_configs_agree(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("output: o\nextract:\n  timeout_s: 2\n  include_tables: false\nray:\n  max_retries: 1\n")
    t = tmp_path / "c.toml"
    t.write_text('output = "o"\n[extract]\ntimeout_s = 2\ninclude_tables = false\n[ray]\nmax_retries = 1\n')
    assert load_config(y).to_dict() == load_config(t).to_dict()


def test_missing_input_is_a_clear_error(tmp_path):
    res = _curate("run", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o"), check=False)
    assert res.returncode == 2 and "does not exist" in res.stderr
    (tmp_path / "empty" / "dump").mkdir(parents=True)
    res = _curate("run", "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "o"), check=False)
    assert res.returncode == 2 and "no input files (*.warc.gz" in res.stderr


def test_config_command_lists_every_setting():
    res = _curate("config")
    assert "max_html_bytes" in res.stdout and "include_tables" in res.stdout and "max_retries" in res.stdout


def test_a_run_that_keeps_no_document_finishes_and_says_so(ray_address, tmp_path):
    """Every document rejected on the way (two short JSON lines): the run still ends with
    exit 0, a summary and a report, not a traceback in the summary's language mix."""
    dump = tmp_path / "in" / "d"
    dump.mkdir(parents=True)
    (dump / "a.jsonl").write_text('{"text": "hello world"}\n{"text": "short one"}\n')
    out = tmp_path / "out"
    r = _curate("run", "--input", str(tmp_path / "in"), "--output", str(out), "--address", ray_address,
                check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no documents" in r.stdout and (out / "report" / "index.html").exists()
    res = _curate("query", "SELECT sum(docs) AS d, sum(rejected) AS r FROM shards WHERE stage = 'extract'",
                  "--output", str(out), "--format", "json")
    assert json.loads(res.stdout) == [{"d": 2, "r": 0}]
