#!/usr/bin/env python3
"""Import openly licensed public wordlists into wordlists/profanity.txt and sexual.txt.

Sources (fetched from the package registries each run, never vendored whole):
  naughty-words 1.2.0 (npm), en.json: LDNOOBW, "List of Dirty, Naughty, Obscene, and Otherwise
      Bad Words", CC BY 4.0
  better-profanity 0.7.0 (PyPI), profanity_wordlist.txt: MIT

What is kept, and why (public lists are written for chat filters, not for school mail):
  - entries with digits or symbols are left out: the matcher reads leetspeak itself;
  - single words with an ordinary English sense (in /usr/share/dict/british-english: "fat",
    "god", "kill", "knob", "hitler", "gay") are left out: the hand-written part of each list
    decides those, with a severity; so are identity, health and safeguarding words in SKIP;
  - phrases made only of ordinary words ("tied up", "big black") are left out unless in KEEP;
  - slurs are not imported here: discriminatory.txt is written by hand, tagged by protected
    characteristic, and SLURS below keeps them out of the other lists;
  - a word already in any list is not repeated (lint would call it a duplicate).
Imported entries go between the markers at the end of each file; rerunning replaces them.

    python3 scripts/import-wordlists.py        # needs pip and npm on PATH
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mailguard import lexicon  # noqa: E402

LISTS = ROOT / "wordlists"
DICTIONARY = Path("/usr/share/dict/british-english")
BEGIN = "# >>> imported by scripts/import-wordlists.py (see SOURCES.md); rerun it, do not edit"
END = "# <<< imported"
PROFANE = re.compile(r"fuck|fuk|phu[kq]|fvck|fxck|shit|cunt|twat|wank|bitch|bastard|piss|"
                     r"arse|ass(?:hole|hat|wipe)|bollock|bullshit|crap|damn|dick|cock|knob|prick|tosser|douche|fcuk|"
                     r"motherf|jackass|dumbass|fatass")
SLURS = {"beaner", "beaners", "coon", "coons", "darkie", "honkey", "honky", "jigaboo",
         "jiggaboo", "jiggerboo", "kike", "kikes", "nigga", "nigger", "niggers", "nig nog",
         "paki", "pakis", "pikey", "raghead", "slanteye", "spic", "spics", "towelhead",
         "wetback", "fag", "fags", "faggot", "faggots", "fagot", "fagots", "faggit", "faggitt",
         "fagg", "faggs", "fagged", "fagging", "bulldyke", "carpet muncher", "carpetmuncher",
         "fudge packer", "fudgepacker", "tranny", "shemale", "heshe", "mong", "spastic",
         "retard", "poof", "dyke", "dykes", "negro", "gook", "gooks", "chink", "jap", "japs",
         "kraut", "injun", "gringo", "guido", "hebe", "heeb", "gaylord", "homo", "homoey",
         "gay", "gays", "gey", "ghay", "ghey", "gae", "gai", "kkk", "klan", "neonazi",
         "swastika", "white power", "nambla", "hitler", "aryan", "arian", "nig", "nigg",
         "niggah", "niglet", "polack", "spick", "spik", "spiks", "wop", "moolie", "wigger",
         "whitey", "kyke", "lesbo", "lesbos", "lez", "lezbian", "lezbians", "lezbo", "lezbos",
         "lezzie", "lezzies", "lezzy", "queero", "pillowbiter", "sausagequeen", "gaysex",
         "tard", "r-tard", "reetard", "ritard", "rtard", "schizo", "spac", "ruski", "pinko"}
SKIP = {"bastardo", "xx", "xxx", "sex", "sexual", "sexually", "sexuality", "penis", "vagina", "vulva",
        "genitals", "rectum", "clitoris", "semen", "ejaculation", "intercourse", "nipple",
        "nipples", "nude", "nudity", "topless", "undressing", "incest", "rape", "raping",
        "rapist", "date rape", "daterape", "paedophile", "pedophile", "grope", "hiv", "herpes",
        "heroin", "hymen", "foreskin", "glans", "gonad", "gonads", "erection", "lolita",
        "playboy", "santorum", "escort", "domination", "eunuch", "hooker", "how to kill",
        "how to murder", "howtokill", "howtomurdep", "homoerotic", "erotic", "erotism",
        "lovemaking", "sexy", "kinky", "viagra", "cialis", "voyeur", "voyuer", "sadism",
        "bondage", "smut", "junkie", "junky", "doofus", "dopey", "foobar", "fubar", "hemp",
        "hooch", "hootch", "hookah", "ganja", "extacy", "extasy", "inbred", "bimbo", "bimbos",
        "twink", "twinkie", "swinger", "threesome", "hardcore", "hard core", "suicide girls",
        "flange", "dink", "dinks", "nsfw", "nsfw images", "2g1c", "menage a trois",
        "strip club", "wet dream", "booty call", "spread legs", "tied up"}
# better-profanity's list also holds chat shorthand ("omg", "wtf"), names ("yury"), anatomy
# ("rectus", "pubis") and other languages: from it only words built on a vulgar root are taken.
VULGAR = re.compile(PROFANE.pattern + r"|cum|jiz|jism|dildo|mast[eu]rb|"
                    r"blowjob|porn|puss|slut|whor|titt|titf|titw|boob|nob(?:head|jo|end)|"
                    r"bellend|felch|feltch|gangbang|smegma|ballsack|nutsack|scrot|shag")
KEEP = {"blow job", "hand job", "gang bang", "jerk off", "jack off", "piece of shit",
        "deep throat", "doggy style", "doggie style", "golden shower", "eat my ass", "strap on",
        "camel toe", "bull shit", "god damn"}


def fetch(tmp: Path) -> dict[str, list[str]]:
    """The entries of each source, downloaded from its registry into `tmp`."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp),
                    "better-profanity==0.7.0"], check=True)
    [wheel] = tmp.glob("better_profanity-*.whl")
    with zipfile.ZipFile(wheel) as z:
        bp = z.read("better_profanity/profanity_wordlist.txt").decode().split("\n")
    subprocess.run(["npm", "pack", "-q", "naughty-words@1.2.0"], cwd=tmp, check=True,
                   capture_output=True)
    [tgz] = tmp.glob("naughty-words-*.tgz")
    with tarfile.open(tgz) as t:
        member = t.extractfile("package/en.json")
        assert member is not None
        ldnoobw = json.load(member)
    return {"LDNOOBW (naughty-words 1.2.0)": ldnoobw, "better-profanity 0.7.0": bp}


def keep(entry: str, english: set[str], source: str) -> bool:
    if source.startswith("better-profanity") and not VULGAR.search(entry):
        return False
    if not re.fullmatch(r"[a-z]+(?:[ -][a-z]+)*", entry) or entry in SLURS or entry in SKIP:
        return False
    words = re.split(r"[ -]", entry)
    if len(words) > 1:
        return entry in KEEP or any(w not in english for w in words)
    return entry not in english


def main() -> int:
    english = {w.lower() for w in DICTIONARY.read_text(encoding="utf-8").split()} \
        if DICTIONARY.exists() else set()
    if not english:
        print(f"import-wordlists: {DICTIONARY} is missing (apt-get install wbritish)",
              file=sys.stderr)
        return 2
    for path in (LISTS / "profanity.txt", LISTS / "sexual.txt"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.split("\n" + BEGIN)[0].rstrip("\n") + "\n", encoding="utf-8")
    listed = {lexicon.normalise(t.text.rstrip("*")) for t in lexicon.load(LISTS).terms}
    chosen: dict[str, dict[str, str]] = {"profanity": {}, "sexual": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for source, entries in fetch(Path(tmp)).items():
            for raw in entries:
                entry = raw.strip().lower()
                if entry in listed or not keep(entry, english, source):
                    continue
                category = "profanity" if PROFANE.search(entry) else "sexual"
                chosen[category].setdefault(entry, source)
                listed.add(entry)
    for category, entries in chosen.items():
        path = LISTS / f"{category}.txt"
        lines = [BEGIN, "# severity: medium"]
        for source in sorted(set(entries.values())):
            lines.append(f"# from {source}")
            lines += sorted(e for e, s in entries.items() if s == source)
        path.write_text(path.read_text(encoding="utf-8") + "\n".join([*lines, END]) + "\n",
                        encoding="utf-8")
        print(f"{category}: {len(entries)} imported")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
