"""The DeepSeek-style tokenizer: pre-tokenizer splits, round trip, specials, token counts."""
import gzip
import json

import pyarrow.parquet as pq
import pytest
import regex

from conftest import DATA, SHARED, read_shards, run_stages
from manifests.manifest import read_rows
from stages.tokenize import SPECIAL_TOKENS, TOKENIZER_FILE
from stages.tokenize.pretokenizer import build_pre_tokenizer

REFERENCE = json.loads((SHARED / "reference" / "deepseek_llm_pretokenizer.json").read_text())


def reference_pieces(text: str) -> list[str]:
    """The reference splits applied directly (each isolating, in order), then single digits."""
    pieces = [text]
    for pattern in REFERENCE["splits"] + [r"\d"]:
        rx = regex.compile(pattern)
        out = []
        for piece in pieces:
            pos = 0
            for m in rx.finditer(piece):
                if m.start() > pos:
                    out.append(piece[pos:m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                pos = m.end()
            if pos < len(piece):
                out.append(piece[pos:])
        pieces = out
    return pieces


def _texts():
    en = [v["articleBody"] for v in json.loads((DATA / "ground-truth.json").read_text()).values()][:15]
    with gzip.open(DATA / "zh-text" / "people-daily-199801.jsonl.gz", "rt") as fh:
        zh = [json.loads(line)["text"] for _, line in zip(range(15), fh)]
    mixed = ["Hello world, 2024年1月我们的模型！ ok\n\nNew  line 12345 ＡＢＣ（全角）「引号」 — done…  "]
    return en + zh + mixed


def test_pre_tokenizer_matches_the_reference_splits():
    pre = build_pre_tokenizer(byte_level=False)
    for text in _texts():
        ours = [p for p, _ in pre.pre_tokenize_str(text)]
        assert ours == reference_pieces(text)


def test_digits_are_single():
    pre = build_pre_tokenizer(byte_level=False)
    assert [p for p, _ in pre.pre_tokenize_str("in 2024, 3.14")] == ["in", " ", "2", "0", "2", "4", ",", " ", "3", ".", "1", "4"]


@pytest.fixture(scope="module")
def tokenized(ray_address, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "out"
    res = run_stages(ray_address, DATA / "crawl", out, order=["extract", "langid", "tokenize"],
                     tokenize={"vocab_size": 3000})
    return out, res


def test_tokenizer_loads_round_trips_and_has_fixed_special_ids(tokenized):
    from tokenizers import Tokenizer
    out, _ = tokenized
    tok = Tokenizer.from_file(str(out / TOKENIZER_FILE))
    info = json.loads((out / "tokenize" / "tokenizer-info.json").read_text())
    assert info["vocab_size_reached"] == 3000 and info["model_vocab_size"] == 102_400
    for i, special in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(special) == 3000 + i
    assert len(SPECIAL_TOKENS) == 15 and tok.get_vocab_size() == 3015
    for text in _texts() + [d["text"] for d in read_shards(out, "langid")]:
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    ids = tok.encode("2024").ids
    assert [tok.id_to_token(i) for i in ids] == ["2", "0", "2", "4"]


def test_token_counts_equal_a_direct_recount(tokenized):
    from tokenizers import Tokenizer
    out, _ = tokenized
    tok = Tokenizer.from_file(str(out / TOKENIZER_FILE))
    rows = read_rows(out, "tokenize")
    texts = {d["id"]: d["text"] for d in read_shards(out, "langid")}
    for row in rows.values():
        counts = pq.read_table(out / row.path).to_pylist()
        direct = [len(tok.encode(texts[c["id"]]).ids) for c in counts]
        assert [c["n_tokens"] for c in counts] == direct
        assert row.tokens == sum(direct) and row.docs == row.docs_in == len(counts)


def test_budget_view(tokenized):
    from manifests.views import connect
    out, _ = tokenized
    con = connect(out)
    rows = {r[0]: r for r in con.execute("SELECT lang, tokens, input_dumps, dumps_needed FROM token_budget").fetchall()}
    total = sum(r.tokens for r in read_rows(out, "tokenize").values())
    assert rows["all"][1] == total and rows["all"][2] == 3
    assert rows["all"][3] == pytest.approx(-(-2e12 // (total / 3)), rel=1e-6)
    assert set(rows) == {"en", "zh", "all"}


def test_corpus_too_small_for_the_vocabulary_says_so(ray_address, demo_corpus, tmp_path):
    logs = []
    from pipeline.config import config_from_dict
    from pipeline.runner import Runner
    cfg = config_from_dict({"input": str(demo_corpus), "output": str(tmp_path / "o"),
                            "order": ["extract", "tokenize"]})
    Runner(cfg, address=ray_address, log=logs.append).run()
    assert any("too small to reach 100,000" in m for m in logs)
