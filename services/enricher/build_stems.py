"""Build the Indonesian/Malay stem lexicon: `python -m pantau.enricher.build_stems`.

Sastrawi takes about a third of a millisecond on a word form it has not seen, and news brings a few
dozen new forms per article: most of the enricher's time. The lexicon holds Sastrawi's own stem of
every word form of the unlabelled news in `shared/data/lid/idms-news.jsonl.gz` (its LEXICON half:
articles whose URL hash is even; the other half is the benchmark's, so `make bench` measures on
articles whose words the lexicon did not come from) and of the NER train files. Loaded once per
process into the stem cache, so the stems are exactly Sastrawi's: the term matcher, the index and
search agree as before. Writes `models/stems-id.tsv.gz` (form, then the stem when it differs)."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

from pantau.enricher.stems import LEXICON_PATH, sastrawi_stem, tokens

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NER_TRAIN = ("idner-news-2k.train.txt", "nergrit.train.txt")


def in_lexicon_half(url: str) -> bool:
    """The lexicon's half of the unlabelled articles; the benchmark draws from the other half."""
    return hashlib.sha256(url.encode()).digest()[0] % 2 == 0


def word_forms(data: Path) -> Counter:
    counts: Counter = Counter()
    with gzip.open(data / "lid" / "idms-news.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            if in_lexicon_half(row["url"]):
                counts.update(tokens(f"{row['title']}\n{row['text']}"))
    for name in NER_TRAIN:
        for line in (data / "ner" / name).read_text(encoding="utf-8").splitlines():
            if line.split():
                counts.update(tokens(line.split()[0]))
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--min-count", type=int, default=1, help="forms seen fewer times are left out")
    parser.add_argument("--output", type=Path, default=LEXICON_PATH)
    args = parser.parse_args(argv)
    started = time.monotonic()
    counts = word_forms(args.data)
    wanted = (f for f, n in counts.items() if n >= args.min_count and len(f) <= 40)
    forms = sorted(f for f in wanted if f.replace("-", "").isalpha())
    rows = []
    for form in forms:
        stem = sastrawi_stem(form)
        rows.append(form if stem == form else f"{form}\t{stem}")
    with gzip.GzipFile(args.output, "wb", mtime=0) as out:  # mtime 0: same input, same bytes
        out.write(("\n".join(rows) + "\n").encode("utf-8"))
    size_kb = args.output.stat().st_size / 1024
    print(f"wrote {args.output}: {len(rows)} forms ({size_kb:.0f} KiB) in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
