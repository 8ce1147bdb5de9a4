"""Writes the toy graph of ``tests/assets/toy/`` (run from the repository root to rebuild it).

A small world of 12 countries, 36 cities and 216 people (264 entities, 6 relations) whose
facts follow rules a link predictor can learn in a few CPU-seconds:

* ``lives_in(person, city)`` and ``located_in(city, country)``: one each, all in train;
* ``citizen_of = lives_in ∘ located_in`` (composition): a tenth held out for valid, a tenth
  for test;
* ``friend_of`` between the six people of a city (symmetric: a held-out ``(a, friend_of, b)``
  keeps ``(b, friend_of, a)`` in train);
* ``borders`` between neighbouring countries on a ring (symmetric, all in train);
* ``capital_of(city, country)``: the first city of each country (all in train).

A uniformly random ranking of 264 candidates has an expected MRR of about
:math:`H_{264} / 264 \\approx 0.024`.

Side files, for the multimodal models and the readers:

* ``literals.txt`` (``entity<TAB>attribute<TAB>value``, read by
  :func:`mmgnn.data.read_numeric_triples`): ``latitude``/``longitude`` of every country,
  of 30 of the 36 cities (near their country's) and of half the people (their city's);
  ``population`` of the cities; ``age`` of a third of the people. The other entities have no
  attribute (the ``numeric`` modality's mask is false for them).
* ``entity2text.txt`` (``entity<TAB>text``, read by :func:`mmgnn.data.read_entity_text`):
  a short description of every entity except one in eight people.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

COUNTRIES, CITIES_PER_COUNTRY, PEOPLE_PER_CITY = 12, 3, 6


def build(seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    countries = [f"country_{c:02d}" for c in range(COUNTRIES)]
    cities = [f"city_{c:02d}_{k}" for c in range(COUNTRIES) for k in range(CITIES_PER_COUNTRY)]
    people = [f"person_{p:03d}" for p in range(len(cities) * PEOPLE_PER_CITY)]
    country_of_city = {city: countries[i // CITIES_PER_COUNTRY] for i, city in enumerate(cities)}
    city_of = {person: cities[i // PEOPLE_PER_CITY] for i, person in enumerate(people)}

    train, held = [], []
    for city, country in country_of_city.items():
        train.append((city, "located_in", country))
        if city.endswith("_0"):
            train.append((city, "capital_of", country))
    for c, country in enumerate(countries):
        for other in (countries[(c - 1) % COUNTRIES], countries[(c + 1) % COUNTRIES]):
            train.append((country, "borders", other))
    for person, city in city_of.items():
        train.append((person, "lives_in", city))
        held.append((person, "citizen_of", country_of_city[city]))
    for city in cities:
        mates = [p for p in people if city_of[p] == city]
        held += [(a, "friend_of", b) for a in mates for b in mates if a != b]
    rng.shuffle(held)
    # A friend_of pair is held out in one direction only, so its mirror stays in train.
    valid, test, seen = [], [], set()
    for triple in held:
        h, r, t = triple
        if (t, r, h) in seen or len(valid) + len(test) >= len(held) // 5:
            train.append(triple)
            continue
        seen.add(triple)
        (valid if len(valid) <= len(test) else test).append(triple)

    literals = []
    position = {}
    for c, country in enumerate(countries):
        angle = 2 * math.pi * c / COUNTRIES
        position[country] = (40 * math.sin(angle), 120 * math.cos(angle))
        literals += [(country, "latitude", position[country][0]),
                     (country, "longitude", position[country][1])]
    for city in cities:
        lat, lon = position[country_of_city[city]]
        position[city] = (lat + rng.uniform(-3, 3), lon + rng.uniform(-3, 3))
        literals.append((city, "population", rng.randint(10_000, 5_000_000)))
        if rng.random() < 30 / 36:
            literals += [(city, "latitude", position[city][0]),
                         (city, "longitude", position[city][1])]
    for i, person in enumerate(people):
        if i % 2 == 0:
            lat, lon = position[city_of[person]]
            literals += [(person, "latitude", lat), (person, "longitude", lon)]
        if i % 3 == 0:
            literals.append((person, "age", rng.randint(18, 90)))

    texts = [(country, f"a country on the ring, number {c}") for c, country in
             enumerate(countries)]
    texts += [(city, f"a city of {country_of_city[city]}") for city in cities]
    texts += [(p, f"a person living in {city_of[p]}") for i, p in enumerate(people) if i % 8]

    def rows(items) -> list[str]:
        return ["\t".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in item)
                for item in items]

    return {"train.txt": rows(train), "valid.txt": rows(valid), "test.txt": rows(test),
            "literals.txt": rows(literals), "entity2text.txt": rows(texts)}


def main() -> None:
    folder = Path(__file__).resolve().parent / "toy"
    folder.mkdir(exist_ok=True)
    for name, lines in build().items():
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
