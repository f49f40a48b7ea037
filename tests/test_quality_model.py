"""Model-based quality: train a fastText classifier on the shared pages, DCLM style."""
import gzip
import json

import lxml.html
import pytest

from conftest import DATA, read_shards, run_stages
from curate.stages.quality.train import normalise, train_quality_model

BOILERPLATE_XPATH = ("//nav | //footer | //header | //aside | //*[contains(@class, 'menu') or "
                     "contains(@class, 'nav') or contains(@class, 'footer') or contains(@class, 'sidebar')"
                     " or contains(@id, 'menu') or contains(@id, 'footer')]")


def boilerplate_text(raw: bytes) -> str:
    """Navigation, header, footer and link text of a page: what an extractor must drop."""
    tree = lxml.html.fromstring(raw)
    parts = [" ".join(el.text_content().split()) for el in tree.xpath(BOILERPLATE_XPATH)]
    parts += [" ".join(a.text_content().split()) for a in tree.xpath("//a")]
    return "\n".join(p for p in parts if p)


@pytest.fixture(scope="module")
def examples():
    truth = json.loads((DATA / "ground-truth.json").read_text())
    names = sorted(truth)
    pos, neg = {}, {}
    for name in names:
        pos[name] = truth[name]["articleBody"]
        neg[name] = boilerplate_text(gzip.open(DATA / "pages" / f"{name}.gz").read())
    held_out = names[::4]                   # a quarter of the pages never seen in training
    train = [n for n in names if n not in held_out]
    return pos, neg, train, held_out


@pytest.fixture(scope="module")
def model_file(examples, tmp_path_factory):
    pos, neg, train, _ = examples
    path = tmp_path_factory.mktemp("qmodel") / "quality.bin"
    # 404 pages of the crawl's sites as extra negatives
    not_found = ["404 Not Found. The page you requested could not be found. Return to the home page."] * 5
    info = train_quality_model([pos[n] for n in train], [neg[n] for n in train if neg[n]] + not_found, path)
    assert info["positives"] == len(train)
    return path


def test_model_ranks_held_back_articles_above_boilerplate(examples, model_file):
    import fasttext
    pos, neg, _, held = examples
    model = fasttext.load_model(str(model_file))

    def score(text):
        labels, probs = model.predict(normalise(text), k=-1)
        return dict(zip(labels, probs)).get("__label__hq", 0.0)

    good = [score(pos[n]) for n in held]
    bad = [score(neg[n]) for n in held if neg[n]]
    pairs = [(g, b) for g in good for b in bad]
    auc = sum(g > b for g, b in pairs) / len(pairs)
    print(f"\nheld-out pages: {len(good)} articles, {len(bad)} boilerplate texts; "
          f"pairwise ranking accuracy (AUC) {auc:.3f}; mean score {sum(good)/len(good):.3f} vs {sum(bad)/len(bad):.3f}")
    assert auc >= 0.9


def test_stage_scores_and_keeps_by_threshold(ray_address, demo_corpus, model_file, tmp_path):
    out = tmp_path / "out"
    run_stages(ray_address, demo_corpus, out, quality={"model_path": str(model_file)})
    docs = read_shards(out, "quality")
    scores = sorted(d["quality_score"] for d in docs)
    assert docs and all(0.0 <= s <= 1.0 for s in scores)
    cut = scores[len(scores) // 2]
    run_stages(ray_address, demo_corpus, out, quality={"model_path": str(model_file), "model_threshold": cut})
    kept = read_shards(out, "quality")
    assert kept and all(d["quality_score"] >= cut for d in kept) and len(kept) < len(docs)
    low = [r for r in read_shards(out, "quality", "rejects") if r["reason"] == "quality_model:low_score"]
    assert len(low) == len(docs) - len(kept)


def test_train_quality_cli(tmp_path, examples):
    import subprocess
    from conftest import curate_cmd
    pos, neg, train, _ = examples
    (tmp_path / "pos.jsonl").write_text("\n".join(json.dumps({"text": pos[n]}) for n in train))
    (tmp_path / "neg.txt").write_text("\n".join(" ".join(neg[n].split()) for n in train if neg[n]))
    res = subprocess.run(curate_cmd() + ["train-quality", "--positive", str(tmp_path / "pos.jsonl"),
                                         "--negative", str(tmp_path / "neg.txt"), "--output",
                                         str(tmp_path / "m.bin")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "m.bin").stat().st_size > 0 and "positive" in res.stdout


def test_stage_keeps_a_top_fraction(ray_address, demo_corpus, model_file, tmp_path):
    out = tmp_path / "out"
    run_stages(ray_address, demo_corpus, out, order=["extract", "langid", "quality"],
               quality={"model_path": str(model_file), "model_keep_top": 0.3})
    from curate.manifests.manifest import read_rows
    rows = read_rows(out, "quality")
    docs_in = sum(r.docs_in for r in rows.values())
    kept = read_shards(out, "quality")
    low = [r for r in read_shards(out, "quality", "rejects") if r["reason"] == "quality_model:low_score"]
    cut = json.loads((out / "_work" / "quality" / "keep-top.json").read_text())["threshold"]
    assert kept and low and all(d["quality_score"] >= cut for d in kept)
    # the top 30% of the input by score, less what the rules removed first
    assert len(kept) <= 0.3 * docs_in + 1
