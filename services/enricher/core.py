"""`enrich`: one raw article in, one enriched article out. Pure — no Kafka, no clock: the event
time comes in with the article, so the same input always yields the same output (a replay after
a rebalance changes nothing downstream).

Steps, in order: language (langdetect, then Indonesian vs Malay); tokens and stems for that
language; entities (model + gazetteer, linked to canonical ids); watched terms (on stems, or exact);
story fingerprint and story id (through the StoryIndex port)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pantau import __version__
from pantau.common.times import parse_timestamp
from pantau.enricher.entities import canonical_entities, find_entities
from pantau.enricher.fingerprint import StoryIndex, assign_story
from pantau.enricher.language import detect_language
from pantau.enricher.stems import stem_tokens, stemmer_name, tokens
from pantau.enricher.terms import TermMatcher

# Enrichment reads at most this much of a text (the schema allows 1 MB): beyond it, news is over
# and only cost remains. The text itself is passed on whole.
MAX_ENRICH_CHARS = 200_000


@dataclass
class Enricher:
    terms: TermMatcher
    stories: StoryIndex
    version: str = __version__

    def enrich(self, raw: dict[str, Any], event_time: datetime) -> dict[str, Any]:
        title = raw.get("title") or ""
        text = (raw.get("text") or "")[:MAX_ENRICH_CHARS]
        language = detect_language(title, text, raw.get("language_hint"))
        code = language.code
        if code == "und":  # too short to tell: stem as the source's usual language
            code = next(iter(raw.get("source", {}).get("languages") or []), "und")

        title_tokens, text_tokens = tokens(title), tokens(text)
        title_stems, text_stems = stem_tokens(title_tokens, code), stem_tokens(text_tokens, code)
        mentions = find_entities(title, text, code)
        story_id, fingerprint = assign_story(
            raw["id"], f"{title}\n{text}", parse_timestamp(raw["crawled_at"]).timestamp(), self.stories
        )
        return {
            **raw,
            "language": {"code": language.code, "probability": round(language.probability, 4)},
            "entities": [m.as_dict() for m in mentions[:5000]],
            "canonical_entities": canonical_entities(mentions)[:1000],
            "terms": self.terms.match_fields([(title_tokens, title_stems), (text_tokens, text_stems)], code),
            "stems": {"title": " ".join(title_stems), "text": " ".join(text_stems), "stemmer": stemmer_name(code)},
            "story": {"id": story_id, "fingerprint": fingerprint},
            "enriched_at": event_time.isoformat(),
            "enricher_version": self.version,
        }
