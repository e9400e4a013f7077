"""Addresses that look like a mistyped one: a domain one slip from a mail provider's or the
school's own (gmial.com, hotmial.co.uk, exmaple.sch.uk), an address one or two edits from
a directory contact's (j.smyth@ for j.smith@), and a display name that belongs to another
address in the directory (the address book's autocomplete picked the wrong Sarah).

Distances are optimal string alignment (Damerau-Levenshtein without re-editing a
substring): a swapped pair of letters is one slip, as it is at the keyboard. RapidFuzz
computes them in C, over the contacts of the recipient's own domain only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from mailguard.school.pupils import fold

# Providers whose names people mistype. Every real domain near one of them (mail.com beside
# gmail.com, me.com beside mac.com) is in FREEMAIL or `known_domains`, and a known domain is
# never a typo.
PROVIDERS = ("gmail.com", "googlemail.com", "hotmail.com", "hotmail.co.uk", "outlook.com",
             "live.co.uk", "live.com", "yahoo.com", "yahoo.co.uk", "icloud.com",
             "btinternet.com", "aol.com", "sky.com", "virginmedia.com", "talktalk.net",
             "ntlworld.com", "protonmail.com")
# Real domains one slip from a provider's, never called typos.
REAL = ("mail.com", "gmx.com", "gmx.co.uk", "me.com", "mac.com", "msn.com", "ymail.com",
        "aol.co.uk", "live.ie", "hotmail.fr", "outlook.fr", "yahoo.fr", "yahoo.ie",
        "btopenworld.com", "blueyonder.co.uk", "virgin.net", "tiscali.co.uk", "talk21.com",
        "sky.co.uk", "plus.net", "orange.net", "o2.co.uk", "email.com", "gmai.com.au")


@dataclass(frozen=True)
class Near:
    """A recipient that looks like another address."""

    kind: str      # "domain", "address" or "name"
    meant: str     # what it looks like: the domain, or the address
    edits: int = 0


def slips(length: int) -> int:
    """Edits that still look like a slip: one for short strings, two from eight letters."""
    return 1 if length < 8 else 2


class Lookalikes:
    """The addresses and names a recipient is compared with."""

    def __init__(self, *, own_domains: Iterable[str], known_domains: Iterable[str],
                 contacts: Iterable[tuple[str, str]] = ()) -> None:
        # Loaded here, not on import: a gateway with the check off never pays its 4.5 MB.
        from rapidfuzz.distance import OSA
        from rapidfuzz.process import extractOne

        self._distance, self._closest = OSA.distance, extractOne
        self.targets = tuple(dict.fromkeys([*PROVIDERS, *(d.lower() for d in own_domains)]))
        self.by_domain: dict[str, list[str]] = defaultdict(list)   # domain → local parts
        self.names: dict[bytes, set[str]] = defaultdict(set)        # folded name → addresses
        addresses: set[str] = set()
        for address, name in contacts:
            address = address.lower()
            local, _, domain = address.rpartition("@")
            if local and address not in addresses:
                self.by_domain[domain].append(local)
                addresses.add(address)
            if name and len(name.split()) >= 2:   # a forename alone is many people's
                self.names[fold(name)].add(address)
        self.addresses = frozenset(addresses)
        self.known = frozenset({*self.targets, *REAL, *(d.lower() for d in known_domains),
                                *self.by_domain})

    def domain(self, address: str) -> Near | None:
        """The provider or own domain this one is a slip of, when it is not a known one."""
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if not domain or domain in self.known:
            return None
        best = self._closest(domain, self.targets, scorer=self._distance,
                             score_cutoff=slips(len(domain)))
        if best is None:
            return None
        return Near("domain", best[0], int(best[1]))

    def address(self, address: str) -> Near | None:
        """The directory address this one is one or two edits from, in the same domain."""
        address = address.lower()
        if address in self.addresses:
            return None
        local, _, domain = address.rpartition("@")
        locals_ = self.by_domain.get(domain)
        if not locals_ or len(local) < 4:
            return None
        best = self._closest(local, locals_, scorer=self._distance,
                             score_cutoff=slips(len(local)))
        if best is None:
            return None
        return Near("address", f"{best[0]}@{domain}", int(best[1]))

    def name(self, display: str, address: str) -> Near | None:
        """The directory address whose contact has this display name, when it is not this
        one ("Sarah Jones" <s.jones99@…> where Sarah Jones is sarah.jones@…)."""
        if not display or len(display.split()) < 2:
            return None
        owners = self.names.get(fold(display))
        if not owners or address.lower() in owners or len(owners) > 1:
            return None   # two Sarah Joneses: the name cannot say which is meant
        return Near("name", next(iter(owners)))
