"""Build the word clusters of the Indonesian entity model: `python -m pantau.enricher.build_clusters`.

Unlabelled text only: the news articles of `shared/data/lid/idms-news.jsonl.gz` (Indonesian and Malay outlets;
names and function words are shared, and more text gives steadier neighbours) plus the words of the two NER train
files, never their labels and never the dev/valid files. Each lowercased word seen at least MIN_COUNT times gets

- three cluster ids, k-means at K_COARSE/K_MID/K_FINE over a truncated SVD of its PPMI-weighted left and right
  neighbour counts (neighbours: the CONTEXT_WORDS most frequent words), playing the part of Brown-cluster prefixes;
- a capitalisation bucket: how often it is written capitalised away from a sentence start ("jakarta" almost always,
  "dan" never), which tells a name from a sentence-initial common word.

Writes `models/ner-clusters.tsv.gz` (word, coarse, mid, fine, cap). Deterministic: fixed seeds, one thread."""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from pantau.enricher.entities import CLUSTERS_PATH, SENTENCE_END, TOKEN

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NEWS = SHARED / "lid" / "idms-news.jsonl.gz"
NER_TRAIN = [SHARED / "ner" / name for name in ("idner-news-2k.train.txt", "nergrit.train.txt")]
MIN_COUNT = 3
CONTEXT_WORDS = 3000
DIMENSIONS = 100
K_COARSE, K_MID, K_FINE = 32, 128, 512
SEED = 0


def news_lines(path: Path) -> list[str]:
    """Title and body paragraphs of every article, one string per line of text."""
    lines = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for row in f:
            article = json.loads(row)
            lines.append(article["title"])
            lines.extend(article["text"].splitlines())
    return lines


def conll_lines(path: Path) -> list[str]:
    """The sentences of a NER train file as space-joined words (the tags are not read)."""
    out, words = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        columns = line.split()
        if columns:
            words.append(columns[0])
        elif words:
            out.append(" ".join(words))
            words = []
    if words:
        out.append(" ".join(words))
    return out


def token_lines(lines: list[str]) -> list[list[str]]:
    return [tokens for line in lines if (tokens := TOKEN.findall(line))]


def cap_bucket(capitalised: int, seen: int) -> str:
    """The capitalisation habit of a word from its mid-sentence occurrences."""
    if seen < 2:
        return "?"
    ratio = capitalised / seen
    return "0" if ratio < 0.05 else "1" if ratio < 0.3 else "2" if ratio < 0.7 else "3" if ratio < 0.95 else "4"


def build(lines: list[list[str]]) -> list[tuple[str, int, int, int, str]]:
    counts: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    capitalised: Counter[str] = Counter()
    for tokens in lines:
        after_end = True
        for token in tokens:
            low = token.lower()
            counts[low] += 1
            if not after_end and token[:1].isalpha():
                seen[low] += 1
                capitalised[low] += token[:1].isupper()
            after_end = token in SENTENCE_END or token in "\"'(\u201c\u2018:"
    vocab = sorted((w for w, n in counts.items() if n >= MIN_COUNT), key=lambda w: (-counts[w], w))
    index = {w: i for i, w in enumerate(vocab)}
    contexts = CONTEXT_WORDS
    # columns: left neighbour (0..C-1), right neighbour (C..2C-1), "<s>" and "</s>"; neighbours outside the top C
    # words share one "other" column per side
    rows, cols = [], []
    for tokens in lines:
        ids = [index.get(t.lower(), -1) for t in tokens]
        ctx = [i if 0 <= i < contexts else contexts for i in ids]
        for k, i in enumerate(ids):
            if i < 0:
                continue
            rows.append(i)
            cols.append(ctx[k - 1] if k > 0 else 2 * contexts + 2)
            rows.append(i)
            cols.append((contexts + 1 + ctx[k + 1]) if k + 1 < len(ids) else 2 * contexts + 3)
    shape = (len(vocab), 2 * contexts + 4)
    matrix = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=shape).tocsr()
    matrix.sum_duplicates()
    # positive PMI, context distribution smoothed (alpha 0.75)
    total = matrix.sum()
    row_p = np.asarray(matrix.sum(axis=1)).ravel() / total
    col_p = np.asarray(matrix.sum(axis=0)).ravel() ** 0.75
    col_p /= col_p.sum()
    coo = matrix.tocoo()
    pmi = np.log(coo.data / total / (row_p[coo.row] * col_p[coo.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=shape)
    vectors = TruncatedSVD(DIMENSIONS, algorithm="randomized", n_iter=7, random_state=SEED).fit_transform(ppmi)
    vectors = normalize(vectors).astype(np.float64)
    ids = []
    for k in (K_COARSE, K_MID, K_FINE):
        model = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=SEED).fit(vectors)
        ids.append(model.labels_)
    return [
        (w, int(ids[0][i]), int(ids[1][i]), int(ids[2][i]), cap_bucket(capitalised[w], seen[w]))
        for i, w in enumerate(vocab)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=CLUSTERS_PATH)
    args = parser.parse_args(argv)
    started = time.monotonic()
    lines = token_lines(news_lines(NEWS) + [line for path in NER_TRAIN for line in conll_lines(path)])
    with threadpool_limits(1):
        table = build(lines)
    text = "".join(f"{w}\t{a}\t{b}\t{c}\t{cap}\n" for w, a, b, c, cap in table)
    # mtime 0: the same table gives the same bytes
    with open(args.output, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(text.encode("utf-8"))
    size_kb = args.output.stat().st_size / 1024
    print(f"wrote {len(table)} words to {args.output} ({size_kb:.0f} KiB) in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
