"""Build `data/gazetteer.json` from the hand-written seed and pycountry: `python -m pantau.enricher.build_gazetteer`.

Run it after editing `data/gazetteer-seed.yaml` or upgrading pycountry, and commit the JSON: the enricher reads only
the JSON, so pycountry is a build-time dependency. The output is deterministic (sorted, no timestamps). Raises
`GazetteerError` when an alias would belong to two entities or an entry is malformed: a silent tie would make the
canonical id depend on dictionary order."""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from pathlib import Path

import pycountry
import yaml

from pantau.enricher.entities import TYPES, alias_key

DATA = Path(__file__).resolve().parent / "data"
SEED = DATA / "gazetteer-seed.yaml"
OUTPUT = DATA / "gazetteer.json"
EXACT_MAX_CHARS = 3  # "Xi", "AS", "UN": short aliases are words in some language unless their case matches
# pycountry names that are more often something else in news: a US state, a first name, a common word.
AMBIGUOUS = frozenset({"Georgia", "Jordan", "Chad", "Jersey", "Reunion", "Man"})
PROVINCE_TYPES = frozenset({"Province", "Capital district", "Special region"})


class GazetteerError(ValueError):
    """The seed or the merged gazetteer is inconsistent; the message names the alias or entry."""


def fold(text: str) -> str:
    """ASCII-folded spelling ("Côte d'Ivoire" → "Cote d'Ivoire"), so unaccented text still matches."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", fold(text).lower()).strip("-")


def is_exact(alias: str) -> bool:
    """Whether the alias only matches with its own case (acronyms and very short names)."""
    return len(alias) <= EXACT_MAX_CHARS or not any(c.islower() for c in alias)


def iso_names(code: str) -> tuple[str, list[str]]:
    """(English display name, every pycountry spelling) for an ISO 3166-1 alpha-2 or 3166-2 code."""
    record = pycountry.countries.get(alpha_2=code) if len(code) == 2 else pycountry.subdivisions.get(code=code)
    if record is None:
        raise GazetteerError(f"unknown ISO code {code!r}")
    names = [getattr(record, key, None) for key in ("common_name", "name", "official_name")]
    names = [n for n in names if n]
    names += [fold(n) for n in names]
    return names[0], [n for n in dict.fromkeys(names) if n not in AMBIGUOUS]


def generated_entities() -> list[dict]:
    """Countries and Indonesian provinces, as seed-shaped entries (the seed wins where it names the same code)."""
    entries = []
    for country in pycountry.countries:
        name, _ = iso_names(country.alpha_2)
        entries.append({"id": f"pantau:loc:{slug(name)}", "name": name, "type": "LOC", "iso": country.alpha_2})
    for sub in pycountry.subdivisions.get(country_code="ID"):
        if sub.type in PROVINCE_TYPES:
            entries.append({"id": f"pantau:loc:{sub.code.lower()}", "name": sub.name, "type": "LOC", "iso": sub.code})
    return entries


def place_entities(places: list[str]) -> list[dict]:
    """Seed entries from the seed's compact `places` list ("Canonical Name|alias|alias", all LOC)."""
    entries = []
    for line in places:
        name, *aliases = (part.strip() for part in line.split("|"))
        entries.append({"id": f"pantau:loc:{slug(name)}", "name": name, "type": "LOC", "aliases": aliases})
    return entries


def normalise_alias(raw: str | dict, entity_id: str) -> dict:
    if isinstance(raw, str):
        raw = {"text": raw}
    text = str(raw.get("text", "")).strip()
    if not text:
        raise GazetteerError(f"{entity_id}: empty alias")
    alias = {"text": text, "exact": is_exact(text)}
    if raw.get("langs"):
        alias["langs"] = sorted(raw["langs"])
    return alias


def build(seed: dict) -> list[dict]:
    """Merge seed and pycountry into sorted entities with unique ids and aliases; raise GazetteerError otherwise."""
    seeded = (seed.get("entities") or []) + place_entities(seed.get("places") or [])
    claimed_iso = {e["iso"] for e in seeded if e.get("iso")}
    entries = seeded + [e for e in generated_entities() if e["iso"] not in claimed_iso]
    entities: dict[str, dict] = {}
    owner: dict[tuple[str, bool], str] = {}
    for entry in entries:
        entity_id, entity_type = entry.get("id"), entry.get("type")
        if not entity_id or not entry.get("name") or entity_type not in TYPES:
            raise GazetteerError(f"malformed entry {entry!r}")
        if entity_id in entities:
            raise GazetteerError(f"duplicate id {entity_id}")
        raw_aliases = [entry["name"], *(entry.get("aliases") or [])]
        if entry.get("iso"):
            raw_aliases += iso_names(entry["iso"])[1]
        aliases: dict[tuple[str, bool], dict] = {}
        for raw in raw_aliases:
            alias = normalise_alias(raw, entity_id)
            key = (alias_key(alias["text"], alias["exact"]), alias["exact"])
            if key in aliases:
                continue
            if key in owner:
                raise GazetteerError(f"alias {alias['text']!r} belongs to both {owner[key]} and {entity_id}")
            owner[key] = entity_id
            aliases[key] = alias
        entities[entity_id] = {
            "id": entity_id,
            "name": entry["name"],
            "type": entity_type,
            "aliases": sorted(aliases.values(), key=lambda a: (a["text"].lower(), a["text"])),
        }
    return [entities[k] for k in sorted(entities)]


def write(entities: list[dict], path: Path) -> None:
    """One entity per line: diffs of the generated file stay readable."""
    lines = ",\n".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in entities)
    path.write_text(f'{{"entities":[\n{lines}\n]}}\n', encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, default=SEED)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    entities = build(yaml.safe_load(args.seed.read_text(encoding="utf-8")))
    write(entities, args.output)
    aliases = sum(len(e["aliases"]) for e in entities)
    print(f"wrote {args.output}: {len(entities)} entities, {aliases} aliases")


if __name__ == "__main__":
    main()
