"""Train the Indonesian entity model: `python -m pantau.enricher.train_ner [--data DIR]`.

Trains a CRF on the two gold train files (idner-news-2k and NERGrit, NERGrit's PERSON/ORGANISATION/PLACE mapped to
PER/ORG/LOC), then scores it on idner dev and NERGrit valid, which it never trains or tunes on: strict span-and-type
F1 per type and micro-averaged. Writes `models/ner-id.crfsuite` and `models/ner-eval.json`. The features read the
word clusters of `models/ner-clusters.tsv.gz`: run `build_clusters` first when they change. Deterministic: same
data, same gazetteer, same clusters, same model bytes. About a minute and a half on one core."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pycrfsuite

from pantau.enricher.entities import MODEL_PATH, TYPES, alias_tags, gazetteer, iob_spans, sentence_features

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ner"
EVAL_PATH = MODEL_PATH.with_name("ner-eval.json")
NERGRIT_TYPES = {"PERSON": "PER", "ORGANISATION": "ORG", "PLACE": "LOC"}
TRAIN_FILES = ("idner-news-2k.train.txt", "nergrit.train.txt")
EVAL_FILES = {"idner_dev": "idner-news-2k.dev.txt", "nergrit_valid": "nergrit.valid.txt"}
# L1 prunes the feature set (the artifact stays a few MB). Chosen by 3-fold cross-validation on the train files
# (`--cv`; mean micro F1 of the two files): c2 0.3 0.771, 0.6 0.769, 0.05 0.768; c1 0.1/c2 0.01 0.756.
PARAMS = {"c1": 0.05, "c2": 0.3, "max_iterations": 200, "feature.possible_transitions": True}


@dataclass(frozen=True)
class Sentence:
    words: list[str]
    labels: list[str]


def read_conll(path: Path) -> list[Sentence]:
    """Sentences of a `token [UPOS] tag` file (space- or tab-separated, CRLF tolerated); labels mapped to TYPES."""
    sentences, words, labels = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        columns = line.split()
        if not columns:
            if words:
                sentences.append(Sentence(words, labels))
                words, labels = [], []
            continue
        tag = columns[-1]
        if tag != "O":
            tag = tag[:2] + NERGRIT_TYPES.get(tag[2:], tag[2:])
        words.append(columns[0])
        labels.append(tag)
    if words:
        sentences.append(Sentence(words, labels))
    return sentences


def gazetteer_tags(words: list[str]) -> list[str]:
    """Gazetteer tags of a pre-tokenised sentence, matched on its words joined by spaces as at tagging time."""
    spans, pos = [], 0
    for word in words:
        spans.append((pos, pos + len(word)))
        pos += len(word) + 1
    return alias_tags(spans, gazetteer().match(" ".join(words), "id"))


def features(words: list[str]) -> list[list[str]]:
    return sentence_features(words, gazetteer_tags(words))


def train(sentences: list[Sentence], path: Path, params: dict = PARAMS) -> None:
    trainer = pycrfsuite.Trainer(verbose=False)
    for sentence in sentences:
        trainer.append(features(sentence.words), sentence.labels)
    trainer.set_params(params)
    trainer.train(str(path))


def strict_f1(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, dict[str, float]]:
    """Exact span-and-type precision, recall and F1 per type and micro-averaged over TYPES."""
    counts = {t: [0, 0, 0] for t in TYPES}  # true positives, predicted, gold
    for gold_labels, predicted_labels in zip(gold, predicted, strict=True):
        gold_spans, predicted_spans = set(iob_spans(gold_labels)), set(iob_spans(predicted_labels))
        for kind in TYPES:
            g = {s for s in gold_spans if s[2] == kind}
            p = {s for s in predicted_spans if s[2] == kind}
            counts[kind][0] += len(g & p)
            counts[kind][1] += len(p)
            counts[kind][2] += len(g)
    counts["micro"] = [sum(c[i] for c in counts.values()) for i in range(3)]
    scores = {}
    for kind, (tp, npred, ngold) in counts.items():
        precision = tp / npred if npred else 0.0
        recall = tp / ngold if ngold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[kind] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
    return scores


def cross_validate(corpora: dict[str, list[Sentence]], params: dict, folds: int = 3) -> dict[str, float]:
    """Micro F1 per train file, pooled over `folds` folds (sentence i of each file is in fold i % folds): how the
    params were chosen, without touching dev/valid."""
    featurised = {name: [(features(s.words), s.labels) for s in sentences] for name, sentences in corpora.items()}
    gold: dict[str, list[list[str]]] = {name: [] for name in corpora}
    predicted: dict[str, list[list[str]]] = {name: [] for name in corpora}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fold.crfsuite"
        for fold in range(folds):
            trainer = pycrfsuite.Trainer(verbose=False)
            for rows in featurised.values():
                for i, (xs, ys) in enumerate(rows):
                    if i % folds != fold:
                        trainer.append(xs, ys)
            trainer.set_params(params)
            trainer.train(str(path))
            tagger = pycrfsuite.Tagger()
            tagger.open(str(path))
            for name, rows in featurised.items():
                for xs, ys in rows[fold::folds]:
                    gold[name].append(ys)
                    predicted[name].append(tagger.tag(xs))
            tagger.close()
    return {name: strict_f1(gold[name], predicted[name])["micro"]["f1"] for name in corpora}


def evaluate(model_path: Path, sentences: list[Sentence]) -> dict[str, dict[str, float]]:
    tagger = pycrfsuite.Tagger()
    tagger.open(str(model_path))
    predicted = [tagger.tag(features(s.words)) for s in sentences]
    return strict_f1([s.labels for s in sentences], predicted)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the NER files (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    parser.add_argument("--eval-output", type=Path, default=EVAL_PATH)
    parser.add_argument("--cv", action="store_true", help="only print 3-fold cross-validation F1 on the train files")
    args = parser.parse_args(argv)

    started = time.monotonic()
    if args.cv:
        print(cross_validate({name: read_conll(args.data / name) for name in TRAIN_FILES}, PARAMS))
        return
    training = [s for name in TRAIN_FILES for s in read_conll(args.data / name)]
    train(training, args.model)
    report = {
        "model": args.model.name,
        "trained_on": list(TRAIN_FILES),
        "train_sentences": len(training),
        "params": PARAMS,
        "scores": {key: evaluate(args.model, read_conll(args.data / name)) for key, name in EVAL_FILES.items()},
    }
    args.eval_output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for key, scores in report["scores"].items():
        row = "  ".join(f"{kind} {s['f1']:.4f}" for kind, s in scores.items())
        print(f"{key:14} strict F1: {row}")
    size_kb = args.model.stat().st_size / 1024
    print(f"wrote {args.model} ({size_kb:.0f} KiB) and {args.eval_output} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
