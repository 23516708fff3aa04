"""Three of the four built-in tasks, as seeded generators of (prompt, reference) pairs.

They mirror the paper's analysis tasks closely enough to show task-specific layer sparsity on a
small model trained on them, while staying learnable by such a model: the vocabulary is small
and closed, facts are concrete (names, places, numbers, dates), and every answer is computed.
The fourth task, code, uses real functions from the standard library (tasks/code.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

from .base import Example, content_id, rng_stream, take_split

FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Irene", "Jonas", "Kira", "Leo",
         "Maya", "Nils", "Olga", "Pablo", "Rosa", "Sam", "Tara", "Umar", "Vera", "Will", "Yara", "Zoe"]
LAST = ["Adams", "Berg", "Costa", "Diaz", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Klein",
        "Lopez", "Moreau", "Novak", "Olsen", "Park", "Quinn", "Rossi", "Silva", "Torres", "Weber", "Young"]
CITIES = ["Alder Bay", "Brookfield", "Cedar Falls", "Dunmore", "Eastwick", "Fairhaven", "Glenrock", "Harbor City",
          "Ironwood", "Juniper", "Kingsport", "Lakeside", "Millbrook", "Northgate", "Oakridge", "Pinecrest",
          "Riverton", "Stonebridge", "Thornbury", "Westfield"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _he_she(rng: random.Random) -> tuple[str, str]:
    return rng.choice([("he", "his"), ("she", "her")])


# ----- summarization: CNN/DailyMail-like ----------------------------------------------------------
ROLES = ["mayor", "engineer", "scientist", "teacher", "coach", "doctor", "firefighter", "farmer", "chef", "pilot"]
EVENTS = [
    # (headline verb phrase, object, number noun, detail sentence templates)
    ("opened a new bridge", "the bridge", "meters long", [
        "Work on {obj} began two years ago and cost more than expected.",
        "Local shops said they hope the new route will bring more visitors.",
        "Traffic on the old road is expected to fall sharply."]),
    ("won the regional championship", "the team", "points in the final", [
        "Fans filled the streets after the last whistle.",
        "It is the first title for {obj} in more than a decade.",
        "Several players thanked their families after the game."]),
    ("announced a plan to plant trees", "the plan", "trees across the city", [
        "Volunteers will help with the planting over the next months.",
        "Experts say {obj} could make summers cooler in busy streets.",
        "Schools will take part by caring for trees near their buildings."]),
    ("reported the discovery of a rare bird", "the bird", "birds in the area", [
        "The bird had not been seen in the region for many years.",
        "Researchers asked visitors to keep their distance from the nests.",
        "Photos of {obj} were shared widely online."]),
    ("led the rescue of hikers", "the rescue", "hikers on the mountain", [
        "Heavy rain had washed away part of the trail.",
        "All of the hikers were taken to a nearby hospital for checks.",
        "Officials warned people to check the weather before walking."]),
    ("opened a new library", "the library", "books on its shelves", [
        "Children were the first to borrow books on opening day.",
        "{obj_cap} also has a room for music and a small garden.",
        "The old library building will become a community center."]),
]


@dataclass
class SummarizationTask:
    """The summarization task: generated CNN/DailyMail-like news articles after one fixed demonstration; the
    reference is a two-sentence summary, `facts` the person, city, date, year and number it holds."""

    name: str = "summarization"
    description: str = ("CNN/DailyMail-like: a short news article with names, places, numbers and dates, "
                        "summarised in one or two sentences (1-shot)")

    def article(self, rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
        """One article drawn from `rng`: (article, its summary, facts), the facts being the person, city,
        "Month D", year and number, each found verbatim in the summary."""
        person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        role, city = rng.choice(ROLES), rng.choice(CITIES)
        verb, obj, unit, details = rng.choice(EVENTS)
        number = rng.choice([rng.randint(12, 99), rng.randint(100, 990)])
        day, month, date = rng.choice(DAYS), rng.choice(MONTHS), rng.randint(1, 28)
        year = rng.randint(2015, 2025)
        pronoun, _ = _he_she(rng)
        extra = [d.format(obj=obj, obj_cap=obj.capitalize()) for d in rng.sample(details, 2)]
        sentences = [
            f"{person}, a {role} from {city}, {verb} on {day}, {month} {date}, {year}.",
            f"According to officials, there are now {number} {unit}.",
            extra[0],
            f"{person.split()[0]} said {pronoun} was proud of everyone who helped.",
            extra[1],
        ]
        if rng.random() < 0.5:
            sentences[1], sentences[2] = sentences[2], sentences[1]
        article = " ".join(sentences)
        summary = (f"{person}, a {role} from {city}, {verb} on {month} {date}, {year}. "
                   f"There are now {number} {unit}.")
        facts = (person, city, f"{month} {date}", str(year), str(number))
        return article, summary, facts

    def candidates(self, seed: int) -> Iterator[tuple[str, Example]]:
        """Endless (article, Example) pairs from the task's stream for `seed` (`rng_stream`), keyed by the
        article for the split hash; each prompt is the demonstration, then "Article: ...\\nSummary:"."""
        rng = rng_stream(self.name, seed)
        shot_article, shot_summary, _ = self.article(random.Random(f"{self.name}-shot"))
        while True:
            article, summary, facts = self.article(rng)
            prompt = f"Article: {shot_article}\nSummary: {shot_summary}\n\nArticle: {article}\nSummary:"
            yield article, Example(self.name, content_id(self.name, article), prompt, " " + summary,
                                   facts=facts)

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """The first `n` distinct examples of `split` that `candidates(seed)` yields (`take_split`); an unknown
        split, a negative `n`, or too few distinct examples within its tries is a SwiftlabError."""
        return take_split(self.candidates(seed), split, n, self.name)


# ----- reasoning: GSM8K-like ------------------------------------------------------------------
ITEMS = ["apples", "marbles", "stickers", "books", "cookies", "pencils", "shells", "cards", "eggs", "coins"]
CONTAINERS = [("box", "boxes"), ("bag", "bags"), ("basket", "baskets"), ("jar", "jars")]


def _word_problem(rng: random.Random) -> tuple[str, str, int]:
    """(question, worked solution, answer); every number is computed, never guessed."""
    name, friend = rng.sample(FIRST, 2)
    he, his = _he_she(rng)
    item = rng.choice(ITEMS)
    kind = rng.randrange(6)
    if kind == 0:
        a, b = rng.randint(5, 40), rng.randint(2, 30)
        c = rng.randint(1, a + b - 1)
        s, r = a + b, a + b - c
        q = (f"{name} has {a} {item}. {he.capitalize()} gets {b} more {item} and then gives {c} {item} "
             f"to {friend}. How many {item} does {name} have now?")
        sol = f"{name} starts with {a} {item}. After getting {b} more, {he} has {a} + {b} = {s}. " \
              f"After giving {c} to {friend}, {he} has {s} - {c} = {r}."
    elif kind == 1:
        a, b = rng.randint(2, 9), rng.randint(3, 12)
        p = a * b
        c = rng.randint(1, p - 1)
        r = p - c
        q = (f"{name} buys {a} packs of {item}. Each pack has {b} {item}. {he.capitalize()} uses {c} of them. "
             f"How many {item} are left?")
        sol = f"{name} buys {a} * {b} = {p} {item}. After using {c}, there are {p} - {c} = {r} left."
    elif kind == 2:
        one, many = rng.choice(CONTAINERS)
        a, b, c = rng.randint(3, 12), rng.randint(2, 8), rng.randint(1, 20)
        p, r = a * b, a * b + c
        q = (f"A {one} holds {a} {item}. {name} fills {b} {many} and has {c} more {item} on the table. "
             f"How many {item} does {name} have in total?")
        sol = f"The {many} hold {b} * {a} = {p} {item}. With the {c} on the table, {name} has {p} + {c} = {r}."
    elif kind == 3:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        p = a * b
        c = rng.choice([v for v in (10, 20, 50, 100) if v > p])
        r = c - p
        q = (f"{name} buys {a} {item} that cost {b} dollars each. {he.capitalize()} pays with a {c} dollar bill. "
             f"How much change does {he} get?")
        sol = f"The {item} cost {a} * {b} = {p} dollars. The change is {c} - {p} = {r} dollars."
    elif kind == 4:
        b, each, c = rng.randint(2, 6), rng.randint(2, 12), rng.randint(1, 9)
        a, r = b * each, each + c
        q = (f"{name} shares {a} {item} equally among {b} friends. Then {friend} gives each friend {c} more. "
             f"How many {item} does each friend have?")
        sol = f"Each friend first gets {a} / {b} = {each} {item}. With {c} more, each has {each} + {c} = {r}."
    else:
        a, b, c = rng.randint(10, 30), rng.randint(2, 5), rng.randint(1, 30)
        p, r = a * b, a * b - c if a * b > c else a * b + c
        if a * b > c:
            q = (f"{name} reads {a} pages a day for {b} days. {friend} reads {c} pages fewer in total. "
                 f"How many pages does {friend} read?")
            sol = f"{name} reads {a} * {b} = {p} pages. {friend} reads {p} - {c} = {r} pages."
        else:  # c can exceed a*b: phrase it as 'more' so the answer stays positive
            q = (f"{name} reads {a} pages a day for {b} days. {friend} reads {c} pages more in total. "
                 f"How many pages does {friend} read?")
            sol = f"{name} reads {a} * {b} = {p} pages. {friend} reads {p} + {c} = {r} pages."
    return q, f"{sol} The answer is {r}.", r


@dataclass
class ReasoningTask:
    """The reasoning task: generated GSM8K-like arithmetic word problems after `shots` fixed worked
    demonstrations; the reference is a worked solution ending "The answer is N.", `answer` N."""

    name: str = "reasoning"
    description: str = "GSM8K-like: multi-step arithmetic word problems with worked solutions (few-shot)"
    shots: int = 3

    def candidates(self, seed: int) -> Iterator[tuple[str, Example]]:
        """Endless (question, Example) pairs from the task's stream for `seed` (`rng_stream`), keyed by the
        question; each prompt is the demonstrations, then "Question: ...\\nAnswer:"."""
        rng = rng_stream(self.name, seed)
        shot_rng = random.Random(f"{self.name}-shots")
        shots = "".join(f"Question: {q}\nAnswer: {s}\n\n" for q, s, _ in
                        (_word_problem(shot_rng) for _ in range(self.shots)))
        while True:
            q, solution, answer = _word_problem(rng)
            yield q, Example(self.name, content_id(self.name, q), f"{shots}Question: {q}\nAnswer:",
                             " " + solution, answer=str(answer))

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """The first `n` distinct examples of `split` that `candidates(seed)` yields (`take_split`); an unknown
        split, a negative `n`, or too few distinct examples within its tries is a SwiftlabError."""
        return take_split(self.candidates(seed), split, n, self.name)


# ----- story: TinyStories-like ------------------------------------------------------------------
HEROES = [("a little girl", "she", "her"), ("a little boy", "he", "his"), ("a small cat", "she", "her"),
          ("a brave dog", "he", "his"), ("a curious rabbit", "she", "her"), ("a happy bear", "he", "his"),
          ("a tiny bird", "she", "her"), ("a young fox", "he", "his")]
HOMES = ["a small house near the woods", "a big city", "a quiet farm", "a village by the sea",
         "a tall tree in the park", "a cozy house on a hill"]
OBJECTS = ["a red ball", "a shiny key", "a blue kite", "an old map", "a soft blanket", "a wooden boat",
           "a yellow hat", "a magic stone", "a big box", "a little drum"]
PLACES = ["in the garden", "under the bed", "by the river", "in the forest", "at the park", "on the beach",
          "behind the barn", "in the attic"]
FEELINGS = ["happy", "excited", "surprised", "curious", "proud"]
PROBLEMS = [
    ("it started to rain very hard", "they waited under a big tree until the sun came out"),
    ("the wind blew {obj} far away", "they ran after it together and found it near a fence"),
    ("{obj} fell into a deep hole", "they used a long stick to pull it out"),
    ("{friend} felt sad and started to cry", "{name} shared {obj} and {friend} smiled again"),
    ("they got lost on the way home", "a kind old owl showed them the right path"),
    ("{obj} broke into two pieces", "{name}'s mom helped them fix it with glue"),
]
MORALS = ["From that day on, they were best friends.", "{name} learned that sharing makes everyone happy.",
          "They went home tired but very happy.", "{name} learned to be careful and kind.",
          "Every day after that, they played together {place}."]


def _story(rng: random.Random) -> str:
    hero, he, his = rng.choice(HEROES)
    name, friend = rng.sample(FIRST, 2)
    obj, place = rng.choice(OBJECTS), rng.choice(PLACES)
    problem, fix = rng.choice(PROBLEMS)
    fill = dict(name=name, friend=friend, obj=obj.replace("a ", "the ", 1).replace("an ", "the ", 1), place=place)
    sentences = [
        f"Once upon a time, there was {hero} named {name}.",
        f"{name} lived in {rng.choice(HOMES)}.",
        f"One day, {name} found {obj} {place}.",
        f"{he.capitalize()} was very {rng.choice(FEELINGS)}.",
        f"{name} showed it to {his} friend {friend}, and they played together.",
        f"But then {problem.format(**fill)}.",
        f"{fix.format(**fill)[0].upper()}{fix.format(**fill)[1:]}.",
        rng.choice(MORALS).format(**fill),
    ]
    return " ".join(sentences)


@dataclass
class StoryTask:
    """The story task: generated TinyStories-like eight-sentence stories; the prompt is one fixed demonstration
    story, then "Story: " and the first sentence, the reference the rest of the story."""

    name: str = "story"
    description: str = "TinyStories-like: short simple stories with characters, places, objects and events (1-shot)"

    def candidates(self, seed: int) -> Iterator[tuple[str, Example]]:
        """Endless (story, Example) pairs from the task's stream for `seed` (`rng_stream`), keyed by the whole
        story."""
        rng = rng_stream(self.name, seed)
        shot = _story(random.Random(f"{self.name}-shot"))
        while True:
            story = _story(rng)
            first, rest = story.split(". ", 1)
            yield story, Example(self.name, content_id(self.name, story), f"Story: {shot}\n\nStory: {first}.",
                                 " " + rest)

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """The first `n` distinct examples of `split` that `candidates(seed)` yields (`take_split`); an unknown
        split, a negative `n`, or too few distinct examples within its tries is a SwiftlabError."""
        return take_split(self.candidates(seed), split, n, self.name)
