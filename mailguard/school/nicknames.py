"""The short forms staff use for pupils' names in letters ("Ollie has settled in well"),
by formal forename. A nickname only ever stands in for the forename of a pupil the
directory lists, so "Ollie Jones" is Oliver Jones, and "Ollie" alone, in a letter to his
parent, is their own child. Common English usage; a school adds none (a pupil known by a
name the directory does not hold is listed by it, or missed).
"""

from __future__ import annotations

NICKNAMES: dict[str, tuple[str, ...]] = {
    "abigail": ("abi", "abbie", "abby"), "alexander": ("alex", "xander"),
    "alexandra": ("alex", "lexi"), "alfred": ("alfie", "alf"), "amelia": ("millie",),
    "anthony": ("tony", "ant"), "archibald": ("archie",), "benjamin": ("ben", "benji"),
    "catherine": ("kate", "katie", "cat"), "charles": ("charlie",),
    "charlotte": ("lottie", "charlie"), "christopher": ("chris",), "daniel": ("dan", "danny"),
    "edward": ("ed", "eddie", "ted", "teddy"), "eleanor": ("ellie", "nell"),
    "elizabeth": ("liz", "lizzie", "beth", "eliza"), "evelyn": ("evie",),
    "florence": ("flo", "flossie"), "frederick": ("fred", "freddie"),
    "gabriel": ("gabe",), "harriet": ("hattie",), "henry": ("harry", "hal"),
    "imogen": ("immy",), "isabella": ("bella", "izzy", "issy"), "isabelle": ("izzy", "belle"),
    "jacob": ("jake",), "james": ("jim", "jimmy", "jamie"), "jennifer": ("jen", "jenny"),
    "jessica": ("jess",), "joseph": ("joe", "joey"), "josephine": ("josie",),
    "joshua": ("josh",), "katherine": ("kate", "katie", "kat"), "madeleine": ("maddie",),
    "margaret": ("maggie", "meg"), "matilda": ("tilly", "tilda"), "matthew": ("matt",),
    "maximilian": ("max",), "michael": ("mike", "mikey"), "natalie": ("nat",),
    "nathaniel": ("nate", "nat"), "nicholas": ("nick", "nicky"), "oliver": ("ollie", "olly"),
    "olivia": ("liv", "livvy"), "penelope": ("penny",), "rebecca": ("becky", "becca"),
    "reginald": ("reggie",), "robert": ("rob", "bob", "bobby"), "ronald": ("ronnie",),
    "samantha": ("sam",), "samuel": ("sam", "sammy"), "stephanie": ("steph",),
    "theodore": ("theo", "teddy"), "thomas": ("tom", "tommy"), "victoria": ("vicky", "tori"),
    "william": ("will", "billy", "bill"), "zachary": ("zach", "zac"),
}
