"""curate estimate models dedup across dumps (issue 21): held-out dumps of the shared crawl."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import DATA, curate_cmd, run_stages
from curate.manifests.manifest import read_rows


def _sample(ray_address, tmp_path, dumps: list[str]):
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    for d in dumps:
        (crawl / d).symlink_to(DATA / "crawl" / d)
    out = tmp_path / "out"
    run_stages(ray_address, crawl, out)
    return out


def _estimate(out, pages, dumps):
    r = subprocess.run(curate_cmd() + ["estimate", "--from-run", str(out), "--pages", str(pages),
                                       "--dumps", str(dumps), "--format", "json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("held_in", [["CC-MAIN-2024-10"], ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]])
def test_estimate_from_early_dumps_projects_the_full_crawl(ray_address, crawl_extract, tmp_path, held_in):
    full, _ = crawl_extract
    rows = read_rows(full, "extract")
    records = sum(r.docs_in for r in rows.values())
    real_docs = sum(r.docs for r in read_rows(full, "decontaminate").values())
    real_tokens = sum(r.tokens for r in read_rows(full, "tokenize").values())
    got = _estimate(_sample(ray_address, tmp_path, held_in), records, 3)
    print(f"\nfrom {len(held_in)} dump(s): documents {got['documents']:.0f} (real {real_docs}), tokens "
          f"{got['tokens']:.0f} (real {real_tokens}); dedup model: {got['dedup']}")
    assert got["documents"] == pytest.approx(real_docs, rel=0.25)
    assert got["tokens"] == pytest.approx(real_tokens, rel=0.25)
    assert ("own dedup curve" in got["dedup"]["model"]) == (len(held_in) > 1)
    assert "DeepSeek" in got["dedup"]["model"] or len(held_in) > 1
    for st in got["stages"]:
        assert {"stage", "core_hours", "storage_bytes", "peak_task_bytes"} <= set(st)
    assert got["measured"] and got["extrapolated"] and "dumps_to_budget" in got
