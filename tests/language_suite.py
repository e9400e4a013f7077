"""The language check's functional suite: behaviours a user would name, each with cases made
from sentence templates × identity terms, every case labelled must-flag or must-pass.

The cases were written from each behaviour's description in issue 15, not from the lists.
Every third template of each behaviour (index 2, 5, …; `Case.held`) is held out: it is never
looked at while tuning the lists or rules. Figures are reported for the tuned and the held-out
parts apart (`make eval`). `{g}` is filled with a group (plural noun), `{a}` with an adjective
form, `{p}` with a person's slur or insult where a behaviour needs one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

GROUPS = ["Muslims", "Jews", "Travellers", "immigrants", "Poles", "gay people",
          "trans people", "disabled people", "Sikhs", "black people"]
ADJECTIVES = ["Muslim", "Jewish", "Traveller", "immigrant", "Polish", "gay", "trans",
              "disabled", "Sikh", "black"]
PLACES = {"Muslims": "mosque", "Jews": "synagogue", "Sikhs": "gurdwara"}
# For sentences with no group in them: the same sentence as it opens an email or a line.
OPENERS = ["", "Hi all, ", "Re Friday: ", "Update - "]


@dataclass(frozen=True)
class Behaviour:
    name: str
    flag: bool                  # True: every case must be flagged; False: none may be
    templates: tuple[str, ...]
    fill: str = "groups"        # "groups", "adjectives", or "none" (each template, opened
                                # by each of OPENERS)
    heading: str = ""           # the safeguarding heading a flagged case belongs under
    to: str = "parent"          # the recipient's role in the directory (grooming: "pupil")


@dataclass(frozen=True)
class Case:
    behaviour: str
    text: str
    flag: bool
    held: bool
    to: str = "parent"


BEHAVIOURS = [
    # -- derogation of protected groups, no slur ------------------------------------------
    Behaviour("derogation: negative attribute", True, (
        "{g} are filthy.", "Honestly {g} are dirty and lazy.", "{g} can't be trusted with anything.",
        "All {g} are liars.", "{g} are disgusting people."), heading="discrimination"),
    Behaviour("derogation: hatred stated", True, (
        "I can't stand {g}.", "I hate {g}, every last one.", "I despise {g}.",
        "{g} make me sick.", "I loathe {g} and always will."), heading="discrimination"),
    Behaviour("derogation: dehumanising", True, (
        "{g} are rats.", "{g} are parasites living off us.", "{g} are vermin.",
        "{g} are animals, simple as that.", "Those {g} are a plague on this town."),
        heading="discrimination"),
    Behaviour("derogation: implicit", True, (
        "{g} should go back where they came from.", "Send the {g} back home.",
        "{g} don't belong in this country.", "We don't want {g} round here.",
        "Get the {g} out of our school."), heading="discrimination"),
    Behaviour("derogation: as a question", True, (
        "Why are {g} always so dirty?", "Why can't {g} ever be trusted?",
        "Isn't it obvious that {g} are thieves?", "Why do {g} smell so bad?"),
        heading="discrimination"),
    Behaviour("derogation: as an opinion", True, (
        "In my opinion {g} are scum.", "I think {g} are disgusting.",
        "Personally I reckon {g} are thieves.", "If you ask me, {g} are vermin."),
        heading="discrimination"),
    Behaviour("derogation: by pronoun in the next sentence", True, (
        "A family of {g} moved in next door. They are filthy.",
        "The {g} came to the meeting. They are all liars.",
        "You know the {g} in year 9? They are vermin.",
        "We have more {g} this year. I can't stand them."), heading="discrimination"),
    Behaviour("derogation: negated positive", True, (
        "{g} are not human.", "{g} are not real people.", "{g} are no better than animals.",
        "{g} will never be British."), heading="discrimination"),
    # -- threats and calls for violence ------------------------------------------------------
    Behaviour("threat: against a person", True, (
        "I'm going to stab you.", "I will kill you when I see you.",
        "I want to break your legs.", "I am going to batter you after school.",
        "I'll smash your face in.", "I'm going to hurt you and your family."), fill="none",
        heading="violence"),
    Behaviour("threat: against a group", True, (
        "I'm going to stab every one of the {g}.", "I will kill all the {g}.",
        "I want to shoot the {g} one by one.", "I am going to burn out the {g}."),
        heading="violence"),
    Behaviour("threat: call for violence", True, (
        "Someone should burn their {place}.", "Someone needs to beat up the {g}.",
        "The {g} should all be shot.", "Somebody should string up the {g}."),
        heading="violence"),
    # -- slurs, insults ----------------------------------------------------------------------
    Behaviour("insult: ordinary words used as slurs", True, (
        "Typical of a whore like you.", "What a slut.", "She is a dirty slag.",
        "Shut up you skank.", "Tell that whore to stop emailing me.",
        "You sad little slut.", "Your mum is a whore.", "Stop acting like a slut."),
        fill="none", heading="bullying"),
    Behaviour("insult: aimed at the reader", True, (
        "You are a useless idiot and a moron.", "You're pathetic.", "You absolute moron.",
        "You're such a loser.", "You're a worthless waste of space.", "You imbecile.",
        "Are you really that much of a cretin?", "You halfwit, read the email."),
        fill="none", heading="bullying"),
    # -- obfuscation -----------------------------------------------------------------------
    Behaviour("obfuscation: masked letters", True, (
        "f*ck off", "this is sh*t", "what a f**king mess", "you c*nt", "total b*llocks",
        "f#ck this", "you b*****d", "sh#t happens here"), fill="none"),
    Behaviour("obfuscation: leetspeak", True, (
        "sh1t day", "what the fuk", "you tw@t", "f0ck off", "$hit report", "b1tch please",
        "you c0ck", "wh0re"), fill="none"),
    Behaviour("obfuscation: spaced or joined", True, (
        "f u c k off", "s.h.i.t", "f-u-c-k this", "youidiot", "fuckoff mate", "sh it show",
        "f uck it", "bull shit"), fill="none"),
    # -- profanity with no target ------------------------------------------------------------
    Behaviour("profanity: aimed at no one", True, (
        "Oh shit, I forgot the register.", "Fucking printer is jammed again.",
        "What a load of bollocks this new system is.", "Bloody hell, it's cold in here, shit.",
        "That inspection was a total fucking shambles."), fill="none"),
    # -- must not flag -----------------------------------------------------------------------
    Behaviour("not: counter-speech quoting hate", False, (
        "He wrote '{g} are thieves' on the board and has been excluded.",
        "A pupil said \"{g} are dirty\" in class; I have logged it with the DSL.",
        "The graffiti said {g} should go home. It has been painted over.",
        "Parents complained that a post claimed {g} can't be trusted."), heading=""),
    Behaviour("not: counter-speech about hate", False, (
        "Saying that {g} are inferior is not acceptable here.",
        "We challenge anyone who says {g} don't belong.",
        "Assembly today is about why hating {g} is wrong.",
        "It is never acceptable to call {g} names."), heading=""),
    Behaviour("not: neutral mention", False, (
        "Our {a} pupils' club meets on Tuesday.", "Two {g} joined the governors this term.",
        "The survey asked how many {g} work in the trust.",
        "We have updated the guidance on supporting {a} staff."), fill="adjectives"),
    Behaviour("not: positive mention", False, (
        "{g} have made a huge contribution to this town.", "We celebrate Diwali and Eid together.",
        "Our {a} families organised a wonderful fair.", "We are proud of our {a} colleagues."),
        fill="adjectives"),
    Behaviour("not: negated hate", False, (
        "Nobody here thinks {g} are thieves.", "It is false that {g} are dirty.",
        "No one should say {g} can't be trusted.", "I don't believe {g} are liars at all."),
        heading=""),
    Behaviour("not: homonyms and place names", False, (
        "The dyke along the Fens was repaired after the floods.",
        "We are visiting Scunthorpe and Penistone on the trip.",
        "The cock crowed in the farm video for Reception.",
        "The kennel's best bitch won at Crufts.", "Please bring a faggot recipe for the "
        "Victorian cookery day.", "Essex and Sussex schools met in Middlesex.",
        "The tit and the robin visited the bird table.",
        "Dick Whittington is the pantomime this year."), fill="none"),
    Behaviour("not: hating a thing or a group no law protects", False, (
        "I loathe marking.", "I can't stand estate agents.", "I hate Mondays.",
        "Traffic wardens are the worst.", "I despise spreadsheets.",
        "Estate agents can't be trusted.", "I can't stand the new timetable.",
        "Cold callers are parasites."), fill="none"),
    Behaviour("not: an insult word in its ordinary sense", False, (
        "I felt such an idiot in the meeting.", "This old laptop is useless.",
        "That was a pathetic excuse for a bus service.", "The idiot box, as my gran called it.",
        "I was a complete loser at the quiz.", "The Whore of Babylon appears in Revelation."),
        fill="none"),
    # -- safeguarding headings (written after the lists of step 5, from issue 15's bullets) --
    Behaviour("safeguarding: harm to oneself", True, (
        "I've started cutting myself again.", "Sometimes I feel like ending my life.",
        "Honestly I just want to die.", "I hurt myself last night when it got bad.",
        "I keep thinking about killing myself.", "There's nothing left to live for."),
        fill="none", heading="self-harm"),
    Behaviour("safeguarding: drugs supplied", True, (
        "I can get you weed for the weekend.", "He's been selling drugs to the Year 10s.",
        "Do you want to buy some pills off me?", "They have him running drugs for them.",
        "I'll sell you some weed cheap.", "We were snorting coke at the party."),
        fill="none", heading="drugs and substance abuse"),
    Behaviour("safeguarding: sexual images of a child asked for", True, (
        "Send me a photo of you in your school uniform.", "Send me pics, nobody will know.",
        "Show me a picture of you in your swimsuit.", "Go on, take your top off for me.",
        "Send me some pictures of yourself tonight."),
        fill="none", heading="child sexual exploitation"),
    Behaviour("grooming: staff to a pupil", True, (
        "Keep this between us and text me later.", "Don't tell your parents I messaged you.",
        "Delete this and add me on Snapchat.", "You looked lovely today. I bought you a gift.",
        "Meet me after school, just the two of us.", "This is our secret, okay?",
        "Message me on WhatsApp, nobody needs to know."),
        fill="none", heading="grooming", to="pupil"),
    Behaviour("not: ordinary mail to a pupil", False, (
        "Your homework is due on Friday; text me if the portal is down.",
        "Well done in the match today, you looked confident.",
        "Please tell your parents about the trip letter.",
        "The gift shop at the museum opens at 10.",
        "Meet me after school in the library for the revision session.",
        "Delete this draft and send me the final version."),
        fill="none", to="pupil"),
    Behaviour("not: teaching about safeguarding topics", False, (
        "Self-harm awareness training is on Monday in the hall.",
        "Our PSHE unit covers drugs, alcohol and the law.",
        "The suicide prevention charity is visiting Year 11.",
        "Assembly is about county lines and how gangs recruit.",
        "Please read the updated policy on sexting and sharing nudes.",
        "The police talk on cannabis and vaping is on Thursday."), fill="none"),
    Behaviour("not: safeguarding reports", False, (
        "A Year 8 pupil told me she is being called names online; please advise.",
        "A parent reports that their child was threatened on the bus.",
        "Please see the attached record of the bullying incident.",
        "The police visited about the threats made to a pupil.",
        "Two pupils were excluded for racist comments; the log is on CPOMS."), fill="none"),
]


# The ordinary sentences `wordlists lint` runs the rules over (wordlists/rules/neutral.txt)
# are a must-pass behaviour too, so the suite and lint read the same ones.
_NEUTRAL = Path(__file__).resolve().parent.parent / "wordlists" / "rules" / "neutral.txt"
BEHAVIOURS.append(Behaviour(
    "not: the neutral sentences lint reads (rules/neutral.txt)", False,
    tuple(line.strip() for line in _NEUTRAL.read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.startswith("#")), fill="none"))


def cases(behaviours: list[Behaviour] = BEHAVIOURS) -> list[Case]:
    """Every case: each template filled with each term (or once, for `fill="none"`)."""
    out = []
    for b in behaviours:
        for i, template in enumerate(b.templates):
            held = i % 3 == 2
            if b.fill == "none":
                fillers = [{"o": o} for o in OPENERS]
            elif b.fill == "adjectives":
                fillers = [{"a": a, "g": g} for a, g in zip(ADJECTIVES, GROUPS, strict=True)]
            else:
                fillers = [{"g": g, "place": PLACES.get(g, "community centre")} for g in GROUPS]
            for f in fillers:
                if "{place}" in template and f.get("g") not in PLACES:
                    f = {**f, "place": "community centre"}
                text = f.get("o", "") + template.format(**f)
                out.append(Case(b.name, text[0].upper() + text[1:], b.flag, held, b.to))
    return out


# Written after the rule lists, and never used to change them: new sentence shapes for the
# same behaviours, so `make eval` can say how far the rules reach past what they were
# written from. Reported apart ("fresh"); not part of the suite's targets.
FRESH = [
    Behaviour("derogation: negative attribute", True, (
        "Every one of those {g} is a thief.", "The trouble with {g} is they are so greedy.",
        "{g}? Dishonest, the lot of them.")),
    Behaviour("derogation: dehumanising", True, (
        "{g} breed like rabbits.", "Those {g} are nothing but cockroaches.",
        "{g} are less than human.")),
    Behaviour("derogation: implicit", True, (
        "This country would be better off without {g}.", "Kick the {g} out.",
        "{g} are taking over our streets.")),
    Behaviour("threat: against a person", True, (
        "Watch your back, I'll be waiting for you.", "You're dead when I find you.",
        "I'm coming for you tomorrow."), fill="none"),
    Behaviour("threat: against a group", True, (
        "We should wipe out the {g}.", "Line the {g} up and shoot them.",
        "I hope someone firebombs the {g}.")),
    Behaviour("insult: aimed at the reader", True, (
        "You thick useless lump.", "You're a disgrace to the profession.",
        "Nobody can stand you, you clown."), fill="none"),
    Behaviour("not: counter-speech quoting hate", False, (
        "Year 10 were told that '{g} are vermin' is hate speech.",
        "The post claiming {g} are thieves has been reported to the police.",
        "She repeated the slur that {g} are dirty, and was sanctioned.")),
    Behaviour("not: neutral mention", False, (
        "The {a} community centre has offered the hall.", "Many {g} live in the catchment.",
        "Ask the {a} chaplain about the visit."), fill="adjectives"),
    Behaviour("not: negated hate", False, (
        "It's simply untrue that {g} are lazy.", "Of course {g} are not thieves.",
        "Nobody believes {g} are dirty.")),
    Behaviour("not: hating a thing or a group no law protects", False, (
        "Wasps are vermin.", "Those pigeons are filthy.", "Estate agents are parasites.",
        "I hate the rain.", "Landlords are thieves, honestly."), fill="none"),
]


def fresh_cases() -> list[Case]:
    """The FRESH behaviours' cases, all held out."""
    return [Case(c.behaviour, c.text, c.flag, True, c.to) for c in cases(FRESH)]


ADDRESSES = {"parent": "parent@example.org", "pupil": "pupil@example.sch.uk"}
SENT = dt.datetime(2026, 11, 24, 10, 30, tzinfo=ZoneInfo("Europe/London")).timestamp()  # a Tuesday


def checker(settings: Any) -> Any:
    """The language check's settings with a directory that knows the suite's recipients."""
    from mailguard.school.directory import Directory

    rows = "".join(f"{address},{role}\n" for role, address in ADDRESSES.items())
    return dataclasses.replace(settings, directory=Directory.parse("email,role\n" + rows))


def flagged(settings: Any, case: Case) -> bool:
    """Whether the check (settings from `checker`) finds anything at medium or high in the
    case, written by staff in school hours to a recipient of the case's role."""
    from mailguard.checks.language import findings
    from mailguard.model import Client, Envelope, Mail

    to = ADDRESSES[case.to]
    raw = f"From: a@example.sch.uk\r\nTo: {to}\r\nSubject: x\r\n\r\n{case.text}\r\n".encode()
    mail = Mail(id="SUITE", envelope=Envelope("a@example.sch.uk", (to,)),
                client=Client(ip="127.0.0.1"), raw=raw, received_at=SENT)
    return any(f.severity != "low" for f in findings(mail, settings))
