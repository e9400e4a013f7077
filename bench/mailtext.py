"""Mail-like English text of any size, the same every run, for timing the language scan.

Words come from the system dictionary with Zipf frequencies (so a megabyte holds tens of
thousands of distinct words, as real mail does), in sentences with punctuation, capitals,
times, prices, addresses, links, curly quotes and the odd quoted reply line.
"""

from __future__ import annotations

import random
from pathlib import Path

DICTIONARY = Path("/usr/share/dict/british-english")
COMMON = [
    "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on",
    "are", "with", "as", "i", "his", "they", "be", "at", "one", "have", "this", "from", "or",
    "had", "by", "not", "word", "but", "what", "some", "we", "can", "out", "other", "were",
    "all", "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which",
    "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "would",
    "write", "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has",
    "look", "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most",
    "people", "my", "over", "know", "water", "than", "call", "first", "who", "may", "down",
    "side", "been", "now", "find", "pupils", "parents", "school", "class", "homework", "trip",
    "meeting", "term", "governors", "staff", "lesson", "report",
]


def vocabulary() -> list[str]:
    words = [w for w in DICTIONARY.read_text(encoding="utf-8").split() if w.isalpha()] \
        if DICTIONARY.exists() else []
    rng = random.Random(7)
    rng.shuffle(words)
    return COMMON + words[:40_000]


def text(size: int, seed: int = 1, vocabulary: list[str] | None = None) -> str:
    """About `size` characters of mail-like prose."""
    rng = random.Random(seed)
    vocab = vocabulary or globals()["vocabulary"]()
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    out: list[str] = []
    length = 0
    while length < size:
        words = rng.choices(vocab, weights, k=rng.randint(6, 22))
        words[0] = words[0].capitalize()
        roll = rng.random()
        if roll < 0.05:
            words.insert(rng.randrange(len(words)), f"{rng.randint(1, 12)}:{rng.randint(10, 59)}")
        elif roll < 0.08:
            words.insert(rng.randrange(len(words)), f"£{rng.randint(2, 90)}.{rng.randint(10, 99)}")
        elif roll < 0.10:
            words.insert(rng.randrange(len(words)), f"j.smith{rng.randint(1, 99)}@school.sch.uk")
        elif roll < 0.12:
            words.insert(rng.randrange(len(words)), f"https://www.example.org/page/{rng.randint(1, 999)}")
        elif roll < 0.15:
            words[rng.randrange(len(words))] = "\u201c" + rng.choice(vocab) + "\u201d"
        sentence = " ".join(words) + rng.choice(".....?!")
        if rng.random() < 0.1:
            sentence = "> " + sentence
        out.append(sentence)
        out.append("\n" if rng.random() < 0.2 else " ")
        length += len(sentence) + 1
    return "".join(out)[:size]
