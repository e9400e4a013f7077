"""A synthetic school for the misdirected check: pupils with valid UPNs, families (siblings,
split families, two pupils of the same name), staff, a sent-mail history with realistic
patterns (each teacher writes to their class's parents, to colleagues and to a few partners
outside), and labelled test messages: mostly correct, including the hard cases, and some
misdirected in each of the ways the check looks for.

Everything comes from one seed, so the tests, `make eval` (bench/misdirected_eval.py) and
`make bench` build the same school from the same number; the evaluation reports a seed it
was not tuned on beside the one it was.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from email.message import EmailMessage

from mailguard.text.identifiers import CHECK_LETTERS

DOMAIN = "example.sch.uk"
FORENAMES = (
    "Amelia Olivia Isla Ava Mia Ivy Lily Isabella Rosie Sophia Grace Willow Freya Florence "
    "Emily Ella Poppy Evie Elsie Charlotte Evelyn Sienna Sofia Daisy Phoebe Sophie Alice "
    "Harper Matilda Ruby Emilia Maya Millie Isabelle Erin Imogen Esme Layla Eliza Maisie "
    "Oliver George Noah Arthur Muhammad Leo Harry Oscar Archie Henry Theodore Freddie Jack "
    "Charlie Theo Alfie Jacob Thomas Finley Arlo William Lucas Roman Tommy Isaac Teddy "
    "Alexander Luca Edward James Joshua Albie Elijah Max Mohammed Reuben Mason Sebastian "
    "Rory Jude Louie Benjamin Ethan Adam Hugo Joseph Reggie Ronnie Louis Frankie Ezra "
    "Zoë Siobhán Aoife Chloé Łukasz Zainab Priya Aarav Kwame Chidi Nia Tariq Yusuf").split()
SURNAMES = (
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
    "Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel "
    "Jackson Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison "
    "Morgan Allen James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths "
    "Mitchell Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox "
    "Richards Khan Marshall Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman "
    "Powell Webb Rogers Gray Mason Ali Hunt Hussain Campbell Matthews Owen Palmer Holmes "
    "Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins Murray Dixon "
    "Harvey O'Brien Smith-Jones Okafor Nowak Kowalski Ahmed Chowdhury Mensah").split()
PROVIDERS = (("gmail.com", 40), ("hotmail.co.uk", 14), ("outlook.com", 10),
             ("yahoo.co.uk", 8), ("icloud.com", 8), ("btinternet.com", 6), ("live.co.uk", 5),
             ("sky.com", 3), ("aol.com", 2), ("virginmedia.com", 2), ("googlemail.com", 2))
TYPO_DOMAINS = {"gmail.com": ("gmial.com", "gmai.com", "gnail.com", "gmail.co"),
                "hotmail.co.uk": ("hotmial.co.uk", "hotmail.co", "hotmai.co.uk"),
                "outlook.com": ("outlok.com", "outlook.co", "outloook.com"),
                "yahoo.co.uk": ("yaho.co.uk", "yahoo.co.k"),
                "icloud.com": ("iclod.com", "icould.com"),
                "btinternet.com": ("btinternt.com", "btintenet.com"),
                "live.co.uk": ("live.co.uj",), "sky.com": ("skyy.com",),
                "aol.com": ("aol.cm",), "virginmedia.com": ("virginmeda.com",),
                "googlemail.com": ("googlemai.com",)}
PARTNERS = ("social.care@county.gov.uk", "sendteam@county.gov.uk", "ed.psych@county.gov.uk",
            "school.nurse@nhs.net", "camhs.referrals@nhs.net", "admissions@county.gov.uk",
            "bookings@coachtrips.co.uk", "accounts@schoolsupplies.co.uk")


def upn(rng: random.Random) -> str:
    """A UPN that passes its check letter (DfE annex A)."""
    digits = f"{rng.choice((801, 873, 204, 330)):03d}{rng.randrange(2000, 2999):04d}" \
             f"{rng.randrange(14, 22):02d}{rng.randrange(1000):03d}"
    total = sum(w * int(d) for w, d in enumerate(digits, 2))
    return CHECK_LETTERS[total % 23] + digits


@dataclass
class Pupil:
    forename: str
    surname: str
    upn: str
    form: int               # the class, taught by one teacher

    @property
    def name(self) -> str:
        return f"{self.forename} {self.surname}"


@dataclass
class Parent:
    email: str
    name: str
    children: list[Pupil]
    new: bool = False       # joined in September: in the directory, not yet in any history


@dataclass
class Staff:
    email: str
    name: str
    form: int | None


@dataclass
class Case:
    """One test message and what it is: `signals` the check should raise (empty: correct)."""

    kind: str
    sender: str
    recipients: list[str]
    raw: bytes
    signals: frozenset[str] = frozenset()


@dataclass
class School:
    pupils: list[Pupil]
    parents: list[Parent]
    staff: list[Staff]
    history: list[tuple[float, str, list[str]]] = field(default_factory=list)

    def directory_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["email", "role", "name", "pupils"])
        for s in self.staff:
            w.writerow([s.email, "staff", s.name, ""])
        for p in self.parents:
            w.writerow([p.email, "parent", p.name,
                        "; ".join(f"{c.name} ({c.upn})" for c in p.children)])
        return out.getvalue()

    def history_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["date", "sender", "recipients"])
        for ts, sender, rcpts in self.history:
            w.writerow([_iso(ts), sender, ";".join(rcpts)])
        return out.getvalue()

    def parents_of(self, pupil: Pupil) -> list[Parent]:
        return [p for p in self.parents if pupil in p.children]

    def teacher_of(self, pupil: Pupil) -> Staff:
        return next(s for s in self.staff if s.form == pupil.form)


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _address(rng: random.Random, forename: str, surname: str, taken: set[str]) -> str:
    domain = rng.choices([d for d, _ in PROVIDERS], [w for _, w in PROVIDERS])[0]
    f = forename.lower().replace("ë", "e").replace("á", "a").replace("é", "e").replace(
        "ł", "l")
    s = surname.lower().replace("'", "").replace("-", "")
    for shape in (f"{f}.{s}", f"{f[0]}{s}", f"{f}{s}", f"{f}_{s}", f"{s}{f[0]}",
                  f"{f}.{s}{rng.randrange(1, 99)}", f"{f[0]}.{s}{rng.randrange(60, 99)}"):
        address = f"{shape}@{domain}"
        if address not in taken:
            taken.add(address)
            return address
    raise AssertionError("unreachable")


def school(seed: int, pupils: int = 300, staff: int = 40, history: int = 20_000,
           now: float = 1_796_000_000.0) -> School:
    """Pupils in families (about one in four has a brother or sister here), one or two
    parents each (split families at two addresses, often two surnames), and a year's mail."""
    rng = random.Random(seed)
    forms = max(1, staff * 3 // 4)
    kids: list[Pupil] = []
    families: list[list[Pupil]] = []
    while len(kids) < pupils:
        surname = rng.choice(SURNAMES)
        size = rng.choices((1, 2, 3), (75, 20, 5))[0]
        family = [Pupil(rng.choice(FORENAMES), surname, upn(rng), rng.randrange(forms))
                  for _ in range(min(size, pupils - len(kids)))]
        kids += family
        families.append(family)
    # Two pupils with the same name in different families: the check must not guess.
    twin = families[-1][0]
    families[0][0].forename, families[0][0].surname = twin.forename, twin.surname
    taken: set[str] = set()
    parents: list[Parent] = []
    for family in families:
        count = rng.choices((1, 2, 3), (20, 62, 18))[0]   # 3: a step-parent too
        for n in range(count):
            surname = family[0].surname if n == 0 or rng.random() < 0.6 else rng.choice(SURNAMES)
            forename = rng.choice(FORENAMES)
            parents.append(Parent(_address(rng, forename, surname, taken),
                                  f"{forename} {surname}", list(family),
                                  new=rng.random() < 0.08))
    teachers = [Staff(f"{f.lower()}.{s.lower()}@{DOMAIN}".replace("'", ""),
                      f"{f} {s}", i if i < forms else None)
                for i, (f, s) in enumerate((rng.choice(FORENAMES[:80]), rng.choice(SURNAMES[:60]))
                                           for _ in range(staff))]
    seen = set()
    for t in teachers:   # distinct addresses
        while t.email in seen:
            t.email = t.email.replace("@", f"{rng.randrange(10)}@")
        seen.add(t.email)
    result = School(kids, parents, teachers)
    result.history = _history(rng, result, history, now)
    return result


def _history(rng: random.Random, s: School, count: int, now: float
             ) -> list[tuple[float, str, list[str]]]:
    out = []
    staff_addresses = [t.email for t in s.staff]
    class_parents: dict[int, list[str]] = {}
    for p in s.parents:
        if not p.new:
            for c in p.children:
                class_parents.setdefault(c.form, []).append(p.email)
    for _ in range(count):
        teacher = rng.choice(s.staff)
        ts = now - rng.uniform(1, 300) * 86400
        kind = rng.random()
        if kind < 0.5 and teacher.form is not None and class_parents.get(teacher.form):
            rcpts = rng.sample(class_parents[teacher.form], k=1)
        elif kind < 0.85:
            rcpts = rng.sample(staff_addresses, k=rng.randrange(1, 4))
        else:
            rcpts = [rng.choice(PARTNERS)]
        out.append((ts, teacher.email, rcpts))
    return out


# -- test messages -------------------------------------------------------------------------

def message(sender: Staff, to: list[tuple[str, str]], subject: str, body: str,
            attachment: tuple[str, str] | None = None, cc: list[tuple[str, str]] = ()) -> bytes:
    m = EmailMessage()
    m["From"] = f"{sender.name} <{sender.email}>"
    m["To"] = ", ".join(f'"{n}" <{a}>' if n else a for n, a in to)
    if cc:
        m["Cc"] = ", ".join(f'"{n}" <{a}>' if n else a for n, a in cc)
    m["Subject"] = subject
    m["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    m["Message-ID"] = "<case@example.sch.uk>"
    m.set_content(body)
    if attachment:
        name, text = attachment
        m.add_attachment(text.encode(), maintype="text", subtype="plain", filename=name)
    return bytes(m).replace(b"\n", b"\r\n")


def _slip(rng: random.Random, address: str, taken: set[str]) -> str:
    """The address with one or two keyboard slips in its local part, not anyone's."""
    local, _, domain = address.partition("@")
    for _ in range(50):
        chars = list(local)
        for _ in range(rng.choice((1, 1, 2))):
            i = rng.randrange(len(chars))
            how = rng.random()
            if how < 0.3 and i + 1 < len(chars):
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif how < 0.55:
                chars.insert(i, rng.choice("abcdefghijklmnopqrstuvwxyz"))
            elif how < 0.8 and len(chars) > 5:
                del chars[i]
            else:
                chars[i] = rng.choice("abcdefghijklmnopqrstuvwxyz")
        out = "".join(chars) + "@" + domain
        if out not in taken and out != address:
            return out
    raise AssertionError("no slip found")


REPORT = ("End of term report for {name}\nUPN {upn}\nAttendance 96%. Reading: working at "
          "the expected standard. {forename} has made good progress in maths.\n")
SEN = ("SEN support plan for {name} (UPN {upn}). Diagnosis: dyslexia; EHCP assessment "
       "requested. Medical: asthma, inhaler in the office.\n")


def cases(s: School, seed: int, count: int = 1000, wrong: float = 0.10) -> list[Case]:
    """`count` messages, `wrong` of them misdirected, the rest correct (hard negatives
    among them)."""
    rng = random.Random(seed * 7919 + 1)
    taken = {p.email for p in s.parents} | {t.email for t in s.staff}
    with_parents = [p for p in s.parents if p.children]
    out: list[Case] = []
    bad = round(count * wrong)
    for _ in range(bad):
        out.append(_misdirected(rng, s, taken, with_parents))
    while len(out) < count:
        out.append(_correct(rng, s, with_parents))
    rng.shuffle(out)
    return out


def _teacher(s: School, pupil: Pupil) -> Staff:
    try:
        return s.teacher_of(pupil)
    except StopIteration:
        return s.staff[0]


def _correct(rng: random.Random, s: School, with_parents: list[Parent]) -> Case:
    parent = rng.choice(with_parents)
    child = rng.choice(parent.children)
    teacher = _teacher(s, child)
    kind = rng.choices(
        ("letter", "report", "both parents", "siblings", "quoted reply", "other child named",
         "newsletter", "colleague", "partner", "no names", "new parent", "reply about another"),
        (20, 12, 10, 8, 8, 8, 6, 10, 6, 8, 4, 5))[0]
    if kind == "new parent":
        news = [p for p in with_parents if p.new] or [parent]
        parent = rng.choice(news)
        child = parent.children[0]
        teacher = _teacher(s, child)
    to = [(parent.name, parent.email)]
    attachment = None
    signals: frozenset[str] = frozenset()
    if kind in ("letter", "new parent"):
        subject = rng.choice((f"{child.name}: parents' evening", f"About {child.forename}",
                              "Today in class"))
        body = f"Dear {parent.name},\n\n{child.name} had a great week and read to the class.\n"
    elif kind == "report":
        subject = f"Report for {child.forename}"
        body = "Dear parent,\n\nPlease find the report attached.\n"
        attachment = (f"Report - {child.name}.txt",
                      REPORT.format(name=child.name, upn=child.upn, forename=child.forename))
    elif kind == "both parents":
        others = [p for p in s.parents_of(child) if p is not parent]
        to += [(p.name, p.email) for p in others]
        subject = f"{child.name} - trip consent"
        body = f"Dear parents,\n\n{child.name} still needs a signed consent form.\n"
    elif kind == "siblings":
        names = " and ".join(c.name for c in parent.children)
        subject = "Christmas fair"
        body = f"Dear {parent.name},\n\nThank you for helping, {names} loved it.\n"
    elif kind == "quoted reply":
        subject = "Re: pick-up on Friday"
        names = " and ".join(c.name for c in parent.children)
        body = (f"Thank you, that is fine.\n\nOn Mon, {parent.name} wrote:\n"
                f"> Could {names} be picked up by their grandmother on Friday?\n")
    elif kind == "reply about another":   # the parent's own words quoted back to them
        other = rng.choice(s.pupils)
        while other in parent.children:
            other = rng.choice(s.pupils)
        subject = "Re: playground"
        body = (f"Thank you for letting me know; I will look into it.\n\nOn Mon, "
                f"{parent.name} wrote:\n> My child says {other.name} has been unkind at "
                "lunchtime.\n")
    elif kind == "other child named":
        other = rng.choice(s.pupils)
        while other in parent.children:
            other = rng.choice(s.pupils)
        subject = "Playground incident"
        body = (f"Dear {parent.name},\n\n{child.forename} and {other.name} had a "
                f"disagreement at lunch; both have apologised.\n")
    elif kind == "newsletter":
        winners = rng.sample(s.pupils, 6)
        to = [(p.name, p.email) for p in rng.sample(with_parents, 12)]
        subject = "Class newsletter"
        body = "Well done to " + ", ".join(w.name for w in winners) + " for their stars.\n"
    elif kind == "colleague":
        colleague = rng.choice(s.staff)
        to = [(colleague.name, colleague.email)]
        subject = f"{child.name}"
        body = SEN.format(name=child.name, upn=child.upn)
    elif kind == "partner":
        to = [("", PARTNERS[rng.randrange(3)])]
        teacher = next((t for t in s.staff if any(
            r == to[0][1] for ts, snd, rs in s.history if snd == t.email for r in rs)),
            teacher)
        subject = f"Referral: {child.name}"
        body = SEN.format(name=child.name, upn=child.upn)
    else:   # no names
        to = [(p.name, p.email) for p in rng.sample(with_parents, 3)]
        subject = "Reminder: inset day"
        body = "Dear parents,\n\nSchool is closed on Monday for staff training.\n"
    return Case(kind, teacher.email, [a for _, a in to],
                message(teacher, to, subject, body, attachment), signals)


def _misdirected(rng: random.Random, s: School, taken: set[str],
                 with_parents: list[Parent]) -> Case:
    parent = rng.choice(with_parents)
    child = rng.choice(parent.children)
    teacher = _teacher(s, child)
    kind = rng.choices(("wrong parent", "wrong attachment", "mail merge", "wrong parent upn",
                        "slipped address", "domain typo", "display name",
                        "first-time outsider", "outsider among colleagues", "forwarded"),
                       (22, 10, 10, 6, 16, 12, 8, 8, 8, 5))[0]
    attachment = None
    if kind in ("wrong parent", "wrong parent upn", "wrong attachment", "forwarded"):
        # Autocomplete picked another family: often the same surname, sometimes anyone.
        same = [p for p in with_parents if p.name.split()[-1] == parent.name.split()[-1]
                and not set(map(id, p.children)) & set(map(id, parent.children))]
        other = rng.choice(same or [p for p in with_parents
                                    if not set(map(id, p.children)) & set(map(id,
                                                                            parent.children))])
        to = [(other.name, other.email)]
        if kind == "wrong parent":
            subject = rng.choice((f"{child.name}: parents' evening", f"{child.name} - reading"))
            body = f"Dear parent,\n\n{child.name} has been struggling with reading lately.\n"
        elif kind == "forwarded":   # a colleague's note about one child, sent on to another's
            subject = f"Fwd: {child.forename}"
            body = (f"Please see below.\n\n---------- Forwarded message ---------\nFrom: "
                    f"{teacher.name} <{teacher.email}>\n\n{child.name} has been struggling "
                    "with reading and needs extra support.\n")
        elif kind == "wrong parent upn":
            subject = "Assessment results"
            body = f"Dear parent,\n\nResults for pupil {child.upn} are below: reading 94.\n"
        else:
            subject = f"Report for {other.children[0].forename}"
            body = f"Dear {other.name},\n\nPlease find {other.children[0].forename}'s report.\n"
            attachment = (f"Report - {child.name}.txt",
                          REPORT.format(name=child.name, upn=child.upn, forename=child.forename))
        return Case(kind, teacher.email, [a for _, a in to],
                    message(teacher, to, subject, body, attachment), frozenset({"pupil"}))
    if kind == "mail merge":
        others = [p for p in with_parents
                  if not set(map(id, p.children)) & set(map(id, parent.children))]
        families = [parent, *rng.sample(others, 4)]
        to = [(p.name, p.email) for p in families]
        body = "Dear parents,\n\nPlease find your child's report attached.\n"
        attachment = (f"Report - {child.name}.txt",
                      REPORT.format(name=child.name, upn=child.upn, forename=child.forename))
        return Case(kind, teacher.email, [a for _, a in to],
                    message(teacher, to, "End of term reports", body, attachment),
                    frozenset({"pupil"}))
    if kind == "slipped address":
        wrong = _slip(rng, parent.email, taken)
        to = [(parent.name, wrong)]
        body = f"Dear {parent.name},\n\n{child.name} has been struggling with reading.\n"
        return Case(kind, teacher.email, [wrong],
                    message(teacher, to, f"About {child.forename}", body),
                    frozenset({"lookalike"}))
    if kind == "domain typo":
        local, _, domain = parent.email.partition("@")
        wrong = f"{local}@{rng.choice(TYPO_DOMAINS[domain])}"
        to = [(parent.name, wrong)]
        body = f"Dear {parent.name},\n\n{child.name} left a coat in class.\n"
        return Case(kind, teacher.email, [wrong],
                    message(teacher, to, "Lost property", body), frozenset({"lookalike"}))
    if kind == "display name":
        stranger = f"{parent.name.split()[0].lower()}{rng.randrange(100, 999)}@" \
                   f"{rng.choice(('gmail.com', 'outlook.com'))}"
        to = [(parent.name, stranger)]
        body = f"Dear {parent.name},\n\n{child.name} has been unwell today.\n"
        return Case(kind, teacher.email, [stranger],
                    message(teacher, to, f"{child.forename} today", body),
                    frozenset({"lookalike"}))
    outsider = f"{rng.choice(FORENAMES).lower()}.{rng.choice(SURNAMES).lower()}@" \
               f"{rng.choice(('consultancy.co.uk', 'btinternet.com', 'charity.org.uk'))}"
    outsider = outsider.replace("'", "")
    body = SEN.format(name=child.name, upn=child.upn)
    if kind == "first-time outsider":
        to = [("", outsider)]
        return Case(kind, teacher.email, [outsider],
                    message(teacher, to, f"Plan for {child.forename}", body),
                    frozenset({"unusual"}))
    colleagues = rng.sample([t for t in s.staff if t is not teacher], 3)
    to = [(c.name, c.email) for c in colleagues] + [("", outsider)]
    return Case(kind, teacher.email, [a for _, a in to],
                message(teacher, to, f"Plan for {child.forename}", body),
                frozenset({"unusual"}))
