"""Measure language identification on single sentences: `python -m pantau.enricher.eval_language DIR`.

DIR holds one `<code>.txt` per language (ISO 639-1), one sentence per line, e.g. lingua's test
sentences (github.com/pemistahl/lingua, src/test/resources/language-testdata/sentences/; taken from
Leipzig University's Wortschatz corpora — not shipped here, their licence is not ours to grant).
Prints accuracy per language for Pantau's `detect_language` and for langdetect's own `detect`
(seed 0) on the same sentences; `und` counts as wrong. For evaluation only: never tune on it (the constants of
`language` were chosen on a disjoint slice of the same files, their lines after the first 100)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from pantau.enricher.language import UNDETERMINED, detect_language

_LANGDETECT_CODES = {"zh-cn": "zh", "zh-tw": "zh"}


def langdetect_code(text: str) -> str:
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    try:
        code = detect(text)
    except LangDetectException:
        return UNDETERMINED
    return _LANGDETECT_CODES.get(code, code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="at most this many sentences per language")
    args = parser.parse_args(argv)
    totals, confusions = Counter(), Counter()
    print(f"{'lang':6}{'n':>6}{'pantau':>9}{'langdetect':>12}")
    for path in sorted(args.folder.glob("*.txt")):
        code = path.stem
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][: args.limit]
        ours = [detect_language("", line).code for line in lines]
        theirs = [langdetect_code(line) for line in lines]
        right_ours, right_theirs = sum(c == code for c in ours), sum(c == code for c in theirs)
        confusions.update((code, c) for c in ours if c != code)
        totals.update({"n": len(lines), "ours": right_ours, "theirs": right_theirs, "und": ours.count(UNDETERMINED)})
        print(f"{code:6}{len(lines):>6}{right_ours / len(lines):>9.2%}{right_theirs / len(lines):>12.2%}")
    n = totals["n"]
    print(f"{'all':6}{n:>6}{totals['ours'] / n:>9.2%}{totals['theirs'] / n:>12.2%}   (pantau und: {totals['und']})")
    print("most frequent errors (gold → called):", ", ".join(f"{g}→{c} {k}" for (g, c), k in confusions.most_common(8)))


if __name__ == "__main__":
    main()
