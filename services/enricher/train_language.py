"""Trains the Indonesian/Malay model of `pantau.enricher.language` and measures it on outlets it never saw.

    python -m pantau.enricher.train_language [--data PATH] [--models DIR]

Writes `idms.json.gz` (the model) and `language-eval.json` (the figures printed) into DIR. Deterministic: naive
Bayes is counting, and folds are assigned by size, so the same data gives the same bytes. Steps:

1. Read the labelled articles (`label` is the outlet's country). An outlet is its registrable domain, so
   news.detik.com and finance.detik.com are one outlet and are never split between training and measuring.
2. Training text loses boilerplate: lines repeated across an outlet's articles, repeated lines, outlet names.
   Measuring text keeps it, as crawled text does.
3. The development outlets (all but `HELD_OUT_OUTLETS`) are split into `FOLDS` folds by outlet. Out-of-fold
   scores pick the decision threshold (best balanced accuracy on sentences) and the slope that calibrates
   probabilities.
4. The model trained on all development outlets is measured on the held-out outlets through
   `detect_language` itself, per article and per sentence of eight words or more: the figures that
   `tests/unit/enricher/test_language.py` holds the shipped model to."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pantau.enricher.language import (
    IdmsModel,
    char_ngrams,
    clean,
    detect_language,
    first_stage,
    idms_tokens,
    stage_texts,
    word_pairs,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "lid" / "idms-news.jsonl.gz"
DEFAULT_MODELS = Path(__file__).resolve().parent / "models"
LABELS = ("id", "ms")  # score > 0 means the second
# Never trained on by the shipped model; the unit tests measure it on these. Kompas is here on purpose: its
# pages say lang="en". Together ~16% of the Indonesian and ~4% of the Malay articles.
HELD_OUT_OUTLETS = ("kompas.com", "tempo.co", "okezone.com", "voaindonesia.com", "hmetro.com.my", "agendadaily.com")
FOLDS = 5
MIN_OUTLETS = 2  # a feature seen in one outlet only is that outlet's signature, not the language's
# Features that move a text's log-odds by less than this are dropped: a smaller model, and no loss (measured).
MIN_WEIGHT = 0.1
SMOOTHING = 0.1  # additive smoothing of feature counts (chosen by outlet-grouped cross-validation, as below)
# A word's 2-5-grams all repeat what the word says: counted at full weight they drown words and pairs.
FEATURE_WEIGHTS = {"words": 1.0, "ngrams": 0.1, "pairs": 1.0}
BOILERPLATE_REPEATS = 3  # a line in this many articles of one outlet is the outlet's, not the writer's
MIN_SENTENCE_WORDS = 8
WEIGHT_DIGITS = 4
_SECOND_LEVEL = {"co", "com", "or", "net", "web", "ac", "go", "org", "sch", "gov", "edu"}
_OUTLET_NAMES = re.compile(
    r"\b(?:tribun\w*|kompas\w*|\w*detik\w*|liputan6|merdeka|republika|okezone|kumparan|tirto|cnn indonesia|"
    r"utusan(?: online)?|awani|astro|sinar harian|malaysiakini|kosmo|harian metro|harakah\w*|agenda ?daily|"
    r"bernama|berita harian)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class Article:
    label: int  # index into LABELS
    outlet: str
    title: str
    text: str
    tokens: list[str] = field(default_factory=list)  # of the boilerplate-free text, for training

    def sentences(self) -> list[str]:
        return [s for s in _SENTENCE_END.split(self.text) if len(s.split()) >= MIN_SENTENCE_WORDS]


def outlet_of(domain: str) -> str:
    """Registrable domain: news.detik.com → detik.com, m.utusan.com.my → utusan.com.my."""
    parts = domain.lower().split(".")
    keep = 3 if len(parts) >= 3 and parts[-2] in _SECOND_LEVEL and len(parts[-1]) == 2 else 2
    return ".".join(parts[-keep:])


def read_articles(path: Path) -> list[Article]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [Article(LABELS.index(r["label"]), outlet_of(r["outlet"]), r["title"], r["text"]) for r in rows]


def tokenize_for_training(articles: Sequence[Article]) -> None:
    """Fills `tokens` from the text without the outlets' boilerplate."""
    repeats: dict[str, Counter[str]] = defaultdict(Counter)
    for article in articles:
        repeats[article.outlet].update({line.strip() for line in article.text.split("\n")} - {""})
    for article in articles:
        lines = dict.fromkeys(line.strip() for line in article.text.split("\n"))
        kept = [line for line in lines if line and repeats[article.outlet][line] < BOILERPLATE_REPEATS]
        article.tokens = idms_tokens(_OUTLET_NAMES.sub(" ", clean("\n".join([article.title, *kept]))))


def train(articles: Sequence[Article]) -> IdmsModel:
    """Naive Bayes log-count ratios (Malay over Indonesian) of the features seen in `MIN_OUTLETS` outlets.
    The returned model has bias 0 and slope 1: `calibrated` sets both."""
    counts: dict[str, list[Counter[str]]] = {kind: [Counter(), Counter()] for kind in FEATURE_WEIGHTS}
    outlets: dict[str, dict[str, set[str]]] = {kind: defaultdict(set) for kind in FEATURE_WEIGHTS}
    for article in articles:
        words = Counter(t for t in article.tokens if t)
        pairs = Counter(word_pairs(article.tokens))
        counts["words"][article.label].update(words)
        counts["pairs"][article.label].update(pairs)
        for word in words:
            outlets["words"][word].add(article.outlet)
        for pair in pairs:
            outlets["pairs"][pair].add(article.outlet)
    for label in (0, 1):
        for word, count in counts["words"][label].items():
            for gram in char_ngrams(word):
                counts["ngrams"][label][gram] += count
    for word, seen in outlets["words"].items():
        for gram in char_ngrams(word):
            outlets["ngrams"][gram] |= seen

    kept = {kind: sorted(f for f, seen in outlets[kind].items() if len(seen) >= MIN_OUTLETS) for kind in counts}
    vocabulary = sum(len(features) for features in kept.values())
    totals = [
        sum(counts[kind][label][f] for kind in counts for f in kept[kind]) + SMOOTHING * vocabulary for label in (0, 1)
    ]
    offset = math.log(totals[0] / totals[1])
    weights: dict[str, dict[str, float]] = {}
    for kind, features in kept.items():
        scale = FEATURE_WEIGHTS[kind]
        ratios = (
            scale * (math.log((counts[kind][1][f] + SMOOTHING) / (counts[kind][0][f] + SMOOTHING)) + offset)
            for f in features
        )
        weights[kind] = {f: w for f, w in zip(features, ratios, strict=True) if abs(w) >= MIN_WEIGHT}
    return IdmsModel(0.0, weights["words"], weights["ngrams"], weights["pairs"])


def calibrated(model: IdmsModel, threshold: float, slope: float) -> IdmsModel:
    """P(ms) = sigmoid(slope * (raw score - threshold)), folded into the weights and rounded for shipping."""

    def scaled(weights: dict[str, float]) -> dict[str, float]:
        rounded = {f: round(slope * w, WEIGHT_DIGITS) for f, w in weights.items()}
        return {f: w for f, w in rounded.items() if w}

    return IdmsModel(
        round(-slope * threshold, WEIGHT_DIGITS), scaled(model.words), scaled(model.ngrams), scaled(model.pairs)
    )


def folds_by_outlet(articles: Sequence[Article], folds: int) -> list[set[str]]:
    """Outlets dealt to folds largest first, each to the fold with the fewest articles of its label so far."""
    sizes = Counter((a.outlet, a.label) for a in articles)
    assigned: list[set[str]] = [set() for _ in range(folds)]
    load = [[0, 0] for _ in range(folds)]
    for (outlet, label), size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        fold = min(range(folds), key=lambda i: (load[i][label], i))
        assigned[fold].add(outlet)
        load[fold][label] += size
    return assigned


@dataclass
class Scored:
    """One measured text: where it is from, its raw score, and whether stage 1 sends it to stage 2."""

    outlet: str
    label: int
    score: float | None
    routed: bool


def out_of_fold(articles: Sequence[Article], folds: list[set[str]]) -> tuple[list[Scored], list[Scored]]:
    """Raw scores of every development article and sentence by the model trained without its outlet's fold."""
    scored_articles: list[Scored] = []
    scored_sentences: list[Scored] = []
    for held in folds:
        model = train([a for a in articles if a.outlet not in held])
        for article in (a for a in articles if a.outlet in held):
            texts = stage_texts(article.title, article.text) or ("", "")
            scored_articles.append(
                Scored(article.outlet, article.label, model.score(texts[1]), first_stage(texts[0]).code == "id")
            )
            for sentence in article.sentences():
                text = clean(sentence)
                scored_sentences.append(
                    Scored(article.outlet, article.label, model.score(text), first_stage(text).code == "id")
                )
    return scored_articles, scored_sentences


def balanced_accuracy(scored: Iterable[Scored], threshold: float) -> float:
    right, seen = [0, 0], [0, 0]
    for s in scored:
        seen[s.label] += 1
        right[s.label] += (s.score is not None and s.score > threshold) == (s.label == 1)
    return sum(r / n for r, n in zip(right, seen, strict=True) if n) / 2


def choose_threshold(sentences: Sequence[Scored]) -> float:
    """The raw score above which a text is Malay that is best on out-of-fold sentences, as balanced accuracy:
    there are seven Malay articles for one Indonesian, and both languages matter as much."""
    routed = [s for s in sentences if s.routed]
    candidates = [t / 4 for t in range(-20, 21)]
    return max(candidates, key=lambda t: (balanced_accuracy(routed, t), -abs(t)))


def choose_slope(sentences: Sequence[Scored], threshold: float) -> float:
    """Slope of the logistic calibration (class-balanced log loss on out-of-fold sentences)."""
    routed = [s for s in sentences if s.routed and s.score is not None]
    per_label = Counter(s.label for s in routed)

    def balanced_log_loss(slope: float) -> float:
        total = 0.0
        for s in routed:
            margin = slope * (s.score - threshold) * (1 if s.label == 1 else -1)
            point = math.log1p(math.exp(-margin)) if margin > -30 else -margin
            total += point / per_label[s.label]
        return total

    return min((round(0.02 * k, 2) for k in range(1, 101)), key=balanced_log_loss)


def accuracy_table(results: Iterable[tuple[str, int, bool]], fold_of: dict[str, int] | None = None) -> dict:
    """Accuracy overall, per label, per outlet and (given `fold_of`) per fold, from (outlet, label, correct)."""
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for outlet, label, correct in results:
        keys = ["all", LABELS[label], f"outlets/{outlet}"]
        if fold_of is not None:
            keys.append(f"folds/{fold_of[outlet] + 1}")
        for key in keys:
            seen[key] += 1
            right[key] += correct
    table: dict = {
        key: {"accuracy": round(right[key] / seen[key], 4), "n": seen[key]} for key in ("all", *LABELS) if seen[key]
    }
    table["balanced"] = round(sum(right[lab] / seen[lab] for lab in LABELS if seen[lab]) / 2, 4)
    for group in ("folds", "outlets"):
        keys = sorted(key for key in seen if key.startswith(f"{group}/"))
        if keys:
            table[group] = {
                key.removeprefix(f"{group}/"): {"accuracy": round(right[key] / seen[key], 4), "n": seen[key]}
                for key in keys
            }
    return table


def cross_validation_figures(scored: Sequence[Scored], threshold: float, fold_of: dict[str, int]) -> dict:
    separator = [
        (s.outlet, s.label, (s.score is not None and s.score > threshold) == (s.label == 1)) for s in scored if s.routed
    ]
    end_to_end = [
        (s.outlet, s.label, s.routed and (s.score is not None and s.score > threshold) == (s.label == 1))
        for s in scored
    ]
    return {"separator": accuracy_table(separator, fold_of), "end_to_end": accuracy_table(end_to_end, fold_of)}


def held_out_figures(model: IdmsModel, articles: Sequence[Article]) -> dict:
    """Through `detect_language` with the trained model: end to end, and the separator alone (texts that
    stage 1 sends to stage 2)."""
    figures: dict = {}
    for unit in ("articles", "sentences"):
        results = []
        for article in articles:
            pairs = [(article.title, article.text)] if unit == "articles" else [("", s) for s in article.sentences()]
            for title, text in pairs:
                code = detect_language(title, text, idms=model).code
                results.append((article.outlet, article.label, code))
        figures[unit] = {
            "separator": accuracy_table((o, lab, code == LABELS[lab]) for o, lab, code in results if code in LABELS),
            "end_to_end": accuracy_table((o, lab, code == LABELS[lab]) for o, lab, code in results),
        }
    return figures


def dump_model(model: IdmsModel, path: Path) -> None:
    document = {"bias": model.bias, "words": model.words, "ngrams": model.ngrams, "pairs": model.pairs}
    payload = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    # mtime=0: the same model gives the same bytes, so a retrain that changes nothing leaves git clean.
    path.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))


def summary(name: str, table: dict) -> str:
    parts = [f"{key} {table[key]['accuracy']:.4f} (n={table[key]['n']})" for key in ("all", *LABELS) if key in table]
    return f"  {name:<34} " + "  ".join(parts) + f"  balanced {table['balanced']:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="idms-news.jsonl.gz")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="where idms.json.gz and the figures go")
    args = parser.parse_args(argv)
    started = time.monotonic()

    articles = read_articles(args.data)
    tokenize_for_training(articles)
    development = [a for a in articles if a.outlet not in HELD_OUT_OUTLETS]
    held_out = [a for a in articles if a.outlet in HELD_OUT_OUTLETS]
    folds = folds_by_outlet(development, FOLDS)
    fold_of = {outlet: i for i, fold in enumerate(folds) for outlet in fold}
    scored_articles, scored_sentences = out_of_fold(development, folds)
    threshold = choose_threshold(scored_sentences)
    slope = choose_slope(scored_sentences, threshold)
    model = calibrated(train(development), threshold, slope)
    args.models.mkdir(parents=True, exist_ok=True)
    model_path = args.models / "idms.json.gz"
    dump_model(model, model_path)

    evaluation = {
        "data": {"file": args.data.name, "sha256": hashlib.sha256(args.data.read_bytes()).hexdigest()},
        "articles": {code: sum(a.label == label for a in articles) for label, code in enumerate(LABELS)},
        "held_out_outlets": list(HELD_OUT_OUTLETS),
        "model": {
            "threshold": threshold,
            "slope": slope,
            "features": {"words": len(model.words), "ngrams": len(model.ngrams), "pairs": len(model.pairs)},
            "bytes": model_path.stat().st_size,
        },
        "cross_validation": {
            "folds": [sorted(fold) for fold in folds],
            "articles": cross_validation_figures(scored_articles, threshold, fold_of),
            "sentences": cross_validation_figures(scored_sentences, threshold, fold_of),
        },
        "held_out": held_out_figures(IdmsModel.load(model_path), held_out),
    }
    (args.models / "language-eval.json").write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
    report(evaluation)
    print(f"model {model_path} ({evaluation['model']['bytes']:,} bytes), done in {time.monotonic() - started:.0f} s")
    return 0


def report(evaluation: dict) -> None:
    model = evaluation["model"]
    print(f"threshold {model['threshold']}, slope {model['slope']}, features {model['features']}")
    for section, title in (("cross_validation", f"{FOLDS}-fold by outlet"), ("held_out", "held-out outlets")):
        print(f"{title}:")
        for unit in ("articles", "sentences"):
            for view in ("separator", "end_to_end"):
                print(summary(f"{unit} {view.replace('_', '-')}", evaluation[section][unit][view]))
    cross_validation, held_out = evaluation["cross_validation"], evaluation["held_out"]
    for number, outlets in enumerate(cross_validation["folds"], start=1):
        names = ", ".join(outlets[:3]) + (f" +{len(outlets) - 3}" if len(outlets) > 3 else "")
        print(f"  fold {number} held out ({names}): " + group_line(cross_validation, "separator", "folds", str(number)))
    for outlet in evaluation["held_out_outlets"]:
        print(f"  held-out {outlet}: " + group_line(held_out, "end_to_end", "outlets", outlet))


def group_line(section: dict, view: str, group: str, key: str) -> str:
    figures = ((unit, section[unit][view][group][key]) for unit in ("articles", "sentences"))
    return ", ".join(f"{unit} {f['accuracy']:.4f} (n={f['n']})" for unit, f in figures)


if __name__ == "__main__":
    sys.exit(main())
