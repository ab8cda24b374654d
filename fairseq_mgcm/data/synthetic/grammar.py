"""A small compositional English->German grammar: the built-in text source of the corpus maker.

Why a grammar and not a phrase list: simultaneous translation is only interesting when the
target order differs from the source order, so a wait-k policy has to wait. German gives that
with a tiny vocabulary (about 150 words):

* verb-final subordinate clauses: "... because the dog sees the ball"
  -> "..., weil der Hund den Ball sieht";
* V2 inversion after a fronted adverb or clause: "Today the man sees ..." -> "Heute sieht der
  Mann ...";
* the participle / infinitive at the clause end: "has seen the dog" -> "hat den Hund gesehen",
  "will see the dog" -> "wird den Hund sehen";
* dative before accusative: "gives the ball to the dog" -> "gibt dem Hund den Ball";
* case and gender agreement of articles and adjectives: der/den/dem, ein/einen/einem,
  "ein großer Hund" / "einen großen Hund".

Everything is deterministic given the seed (``random.Random``; no hash ordering). Sentences have
4-14 English words and are deduplicated on both sides, so that held-out splits never repeat a
training sentence.
"""
import random
from dataclasses import dataclass

MIN_WORDS, MAX_WORDS = 4, 14

# ---------------------------------------------------------------------------------------------
# Lexicon
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noun:
    en: str
    de: str
    gender: str  # "m", "f" or "n"
    kind: str  # "animate", "thing" or "place"


NOUNS = [
    Noun("man", "Mann", "m", "animate"), Noun("woman", "Frau", "f", "animate"),
    Noun("child", "Kind", "n", "animate"), Noun("dog", "Hund", "m", "animate"),
    Noun("cat", "Katze", "f", "animate"), Noun("teacher", "Lehrer", "m", "animate"),
    Noun("doctor", "Arzt", "m", "animate"), Noun("friend", "Freund", "m", "animate"),
    Noun("girl", "Mädchen", "n", "animate"), Noun("bird", "Vogel", "m", "animate"),
    Noun("horse", "Pferd", "n", "animate"), Noun("mother", "Mutter", "f", "animate"),
    Noun("father", "Vater", "m", "animate"), Noun("cook", "Koch", "m", "animate"),
    Noun("ball", "Ball", "m", "thing"), Noun("book", "Buch", "n", "thing"),
    Noun("apple", "Apfel", "m", "thing"), Noun("car", "Auto", "n", "thing"),
    Noun("letter", "Brief", "m", "thing"), Noun("flower", "Blume", "f", "thing"),
    Noun("picture", "Bild", "n", "thing"), Noun("door", "Tür", "f", "thing"),
    Noun("bread", "Brot", "n", "thing"), Noun("cup", "Tasse", "f", "thing"),
    Noun("key", "Schlüssel", "m", "thing"), Noun("hat", "Hut", "m", "thing"),
    Noun("bag", "Tasche", "f", "thing"), Noun("window", "Fenster", "n", "thing"),
    Noun("garden", "Garten", "m", "place"), Noun("house", "Haus", "n", "place"),
    Noun("park", "Park", "m", "place"), Noun("city", "Stadt", "f", "place"),
    Noun("school", "Schule", "f", "place"), Noun("kitchen", "Küche", "f", "place"),
]
ANIMATE = [n for n in NOUNS if n.kind == "animate"]
THINGS = [n for n in NOUNS if n.kind == "thing"]
PLACES = [n for n in NOUNS if n.kind == "place"]
_NOUN = {n.en: n for n in NOUNS}

# (english, german stem) ; adjectives fitting any noun, animate nouns, or things.
ADJ_ANY = [("big", "groß"), ("small", "klein"), ("old", "alt"), ("beautiful", "schön")]
ADJ_ANIMATE = [("young", "jung"), ("happy", "glücklich")]
ADJ_THING = [("new", "neu"), ("red", "rot"), ("black", "schwarz")]

# Determiners: english word, and the German form for (case, gender).
_DEF = {("nom", "m"): "der", ("nom", "f"): "die", ("nom", "n"): "das",
        ("acc", "m"): "den", ("acc", "f"): "die", ("acc", "n"): "das",
        ("dat", "m"): "dem", ("dat", "f"): "der", ("dat", "n"): "dem"}


def _ein_type(stem: str) -> dict[tuple[str, str], str]:
    """Forms of ein / mein / unser (the "ein-words" share one ending pattern)."""
    endings = {("nom", "m"): "", ("nom", "f"): "e", ("nom", "n"): "",
               ("acc", "m"): "en", ("acc", "f"): "e", ("acc", "n"): "",
               ("dat", "m"): "em", ("dat", "f"): "er", ("dat", "n"): "em"}
    return {key: stem + ending for key, ending in endings.items()}


DETERMINERS = {"the": _DEF, "a": _ein_type("ein"), "my": _ein_type("mein"),
               "our": _ein_type("unser")}
_DET_WEIGHTS = {"the": 6, "a": 3, "my": 1, "our": 1}


@dataclass(frozen=True)
class Verb:
    """A verb with the forms both languages need.

    en: base, 3rd person singular, simple past, past participle.
    de: infinitive, 1sg, 3sg, 1pl (= infinitive for all our verbs), participle, perfect auxiliary.
    """

    en: tuple[str, str, str, str]
    de: tuple[str, str, str, str, str]
    aux: str = "haben"
    objects: str = "any"  # which nouns fit as direct object: "any", "animate", "thing"


TRANSITIVE = [
    Verb(("see", "sees", "saw", "seen"), ("sehen", "sehe", "sieht", "sehen", "gesehen")),
    Verb(("find", "finds", "found", "found"), ("finden", "finde", "findet", "finden", "gefunden")),
    Verb(("love", "loves", "loved", "loved"), ("lieben", "liebe", "liebt", "lieben", "geliebt")),
    Verb(("need", "needs", "needed", "needed"),
         ("brauchen", "brauche", "braucht", "brauchen", "gebraucht")),
    Verb(("paint", "paints", "painted", "painted"), ("malen", "male", "malt", "malen", "gemalt")),
    Verb(("wash", "washes", "washed", "washed"),
         ("waschen", "wasche", "wäscht", "waschen", "gewaschen")),
    Verb(("buy", "buys", "bought", "bought"), ("kaufen", "kaufe", "kauft", "kaufen", "gekauft"),
         objects="thing"),
    Verb(("carry", "carries", "carried", "carried"),
         ("tragen", "trage", "trägt", "tragen", "getragen"), objects="thing"),
    Verb(("open", "opens", "opened", "opened"),
         ("öffnen", "öffne", "öffnet", "öffnen", "geöffnet"), objects="thing"),
    Verb(("visit", "visits", "visited", "visited"),
         ("besuchen", "besuche", "besucht", "besuchen", "besucht"), objects="animate"),
    Verb(("call", "calls", "called", "called"), ("rufen", "rufe", "ruft", "rufen", "gerufen"),
         objects="animate"),
]
# Ditransitive: "X gives the ball to the dog" -> "X gibt dem Hund den Ball".
DITRANSITIVE = [
    Verb(("give", "gives", "gave", "given"), ("geben", "gebe", "gibt", "geben", "gegeben")),
    Verb(("show", "shows", "showed", "shown"), ("zeigen", "zeige", "zeigt", "zeigen", "gezeigt")),
    Verb(("bring", "brings", "brought", "brought"),
         ("bringen", "bringe", "bringt", "bringen", "gebracht")),
]
INTRANSITIVE = [
    Verb(("laugh", "laughs", "laughed", "laughed"),
         ("lachen", "lache", "lacht", "lachen", "gelacht")),
    Verb(("sleep", "sleeps", "slept", "slept"),
         ("schlafen", "schlafe", "schläft", "schlafen", "geschlafen")),
    Verb(("sing", "sings", "sang", "sung"), ("singen", "singe", "singt", "singen", "gesungen")),
    Verb(("wait", "waits", "waited", "waited"),
         ("warten", "warte", "wartet", "warten", "gewartet")),
    Verb(("play", "plays", "played", "played"),
         ("spielen", "spiele", "spielt", "spielen", "gespielt")),
    Verb(("run", "runs", "ran", "run"), ("laufen", "laufe", "läuft", "laufen", "gelaufen"),
         aux="sein"),
    Verb(("come", "comes", "came", "come"), ("kommen", "komme", "kommt", "kommen", "gekommen"),
         aux="sein"),
]
# Verbs taking a "that" clause: "I think that ..." -> "ich glaube, dass ...".
SAYING = [
    Verb(("think", "thinks", "thought", "thought"),
         ("glauben", "glaube", "glaubt", "glauben", "geglaubt")),
    Verb(("know", "knows", "knew", "known"), ("wissen", "weiß", "weiß", "wissen", "gewusst")),
    Verb(("say", "says", "said", "said"), ("sagen", "sage", "sagt", "sagen", "gesagt")),
]
# Finite forms (1sg, 3sg, 1pl) of the German auxiliaries and modals.
_AUX_DE = {"haben": ("habe", "hat", "haben"), "sein": ("bin", "ist", "sind"),
           "werden": ("werde", "wird", "werden"), "können": ("kann", "kann", "können"),
           "wollen": ("will", "will", "wollen")}

# Fronted time adverbs and the tenses they allow.
ADVERBS = [("today", "heute", ("present", "future", "can", "want")),
           ("yesterday", "gestern", ("past",)),
           ("tomorrow", "morgen", ("future",)),
           ("now", "jetzt", ("present", "can", "want")),
           ("sometimes", "manchmal", ("present",))]
CONJUNCTIONS = [("because", "weil"), ("although", "obwohl"), ("if", "wenn"),
                ("while", "während")]
TENSES = ("present", "past", "perfect", "future", "can", "want")
_TENSE_WEIGHTS = (5, 2, 2, 2, 1, 1)

# ---------------------------------------------------------------------------------------------
# Phrases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phrase:
    """A constituent in both languages (lists of words)."""

    en: tuple[str, ...]
    de: tuple[str, ...]


@dataclass(frozen=True)
class Subject:
    phrase: Phrase
    person: int  # index into the (1sg, 3sg, 1pl) finite forms


_PRONOUNS = [(("I",), ("ich",), 0), (("he",), ("er",), 1), (("she",), ("sie",), 1),
             (("we",), ("wir",), 2)]


def _noun_phrase(rng: random.Random, noun: Noun, case: str, adjective_p: float) -> Phrase:
    det = rng.choices(list(_DET_WEIGHTS), weights=list(_DET_WEIGHTS.values()))[0]
    adjective = None
    if rng.random() < adjective_p:
        pool = ADJ_ANY + (ADJ_ANIMATE if noun.kind == "animate" else ADJ_THING)
        adjective = rng.choice(pool)
    en_words = [adjective[0], noun.en] if adjective else [noun.en]
    if det == "a" and en_words[0][0] in "aeiou":
        det_en = "an"
    else:
        det_en = det
    de_det = DETERMINERS[det][(case, noun.gender)]
    de_words = [de_det]
    if adjective:
        de_words.append(adjective[1] + _adjective_ending(det, case, noun.gender))
    de_words.append(noun.de)
    return Phrase(tuple([det_en] + en_words), tuple(de_words))


def _adjective_ending(det: str, case: str, gender: str) -> str:
    """Weak endings after der-words, mixed endings after ein-words."""
    if case == "dat":
        return "en"
    if case == "acc" and gender == "m":
        return "en"
    if det == "the":
        return "e"
    return {"m": "er", "f": "e", "n": "es"}[gender]


def _subject(rng: random.Random, adjective_p: float) -> Subject:
    if rng.random() < 0.3:
        en, de, person = rng.choice(_PRONOUNS)
        return Subject(Phrase(en, de), person)
    return Subject(_noun_phrase(rng, rng.choice(ANIMATE), "nom", adjective_p), 1)


def _object_noun(rng: random.Random, verb: Verb) -> Noun:
    pool = {"any": ANIMATE + THINGS, "animate": ANIMATE, "thing": THINGS}[verb.objects]
    return rng.choice(pool)


@dataclass(frozen=True)
class Clause:
    """A clause whose German verb position depends on where it is used.

    ``middle`` holds the objects and adverbials (German order), ``finite`` the finite verb and
    ``final`` the participle or infinitive that German puts at the end.
    """

    subject: Subject
    en_verb_and_rest: tuple[str, ...]
    finite: str
    middle: tuple[str, ...]
    final: tuple[str, ...]

    def de_main(self, front: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Verb second: subject finite ... final, or front finite subject ... final."""
        if front:
            return front + self.de_inverted()
        return self.subject.phrase.de + (self.finite,) + self.middle + self.final

    def de_inverted(self) -> tuple[str, ...]:
        """Finite verb first, for a clause after a fronted constituent."""
        return (self.finite,) + self.subject.phrase.de + self.middle + self.final

    def de_subordinate(self) -> tuple[str, ...]:
        """Verb last: subject ... final finite."""
        return self.subject.phrase.de + self.middle + self.final + (self.finite,)

    @property
    def en(self) -> tuple[str, ...]:
        return self.subject.phrase.en + self.en_verb_and_rest


def _clause(
    rng: random.Random, tense: str, allow_pp: bool, adjective_p: float, kind: str | None = None
) -> Clause:
    subject = _subject(rng, adjective_p)
    p = subject.person
    kind = kind or rng.choices(["intr", "tr", "ditr"], weights=[3, 6, 2])[0]
    if kind == "intr":
        verb = rng.choice(INTRANSITIVE)
        objects = Phrase((), ())
    elif kind == "tr":
        verb = rng.choice(TRANSITIVE)
        objects = _noun_phrase(rng, _object_noun(rng, verb), "acc", adjective_p)
    else:
        verb = rng.choice(DITRANSITIVE)
        thing = _noun_phrase(rng, rng.choice(THINGS), "acc", adjective_p)
        recipient = _noun_phrase(rng, rng.choice(ANIMATE), "dat", adjective_p)
        objects = Phrase(thing.en + ("to",) + recipient.en, recipient.de + thing.de)
    pp = Phrase((), ())
    if allow_pp and rng.random() < 0.35:
        pp = _place_phrase(rng) if rng.random() < 0.7 else _company_phrase(rng, adjective_p)
    en_base, en_3sg, en_past, en_part = verb.en
    third = p == 1
    if tense == "present":
        en_v, finite, final = ((en_3sg if third else en_base),), verb.de[1 + p], ()
    elif tense == "past" or tense == "perfect":
        if tense == "past":
            en_v = (en_past,)
        else:
            en_v = ("has" if third else "have", en_part)
        finite, final = _AUX_DE[verb.aux][p], (verb.de[4],)
    elif tense == "future":
        en_v, finite, final = ("will", en_base), _AUX_DE["werden"][p], (verb.de[0],)
    elif tense == "can":
        en_v, finite, final = ("can", en_base), _AUX_DE["können"][p], (verb.de[0],)
    else:
        en_v = ("wants" if third else "want", "to", en_base)
        finite, final = _AUX_DE["wollen"][p], (verb.de[0],)
    return Clause(subject, en_v + objects.en + pp.en, finite, objects.de + pp.de, final)


def _place_phrase(rng: random.Random) -> Phrase:
    place = rng.choice(PLACES)
    if place.gender == "f":
        return Phrase(("in", "the", place.en), ("in", "der", place.de))
    return Phrase(("in", "the", place.en), ("im", place.de))  # in + dem = im


def _company_phrase(rng: random.Random, adjective_p: float) -> Phrase:
    companion = _noun_phrase(rng, rng.choice(ANIMATE), "dat", adjective_p)
    return Phrase(("with",) + companion.en, ("mit",) + companion.de)


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------


def _tense(rng: random.Random, allowed: tuple[str, ...] = TENSES) -> str:
    weights = [w for t, w in zip(TENSES, _TENSE_WEIGHTS) if t in allowed]
    return rng.choices([t for t in TENSES if t in allowed], weights=weights)[0]


def _sentence(rng: random.Random) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """One sentence pair as word tuples (before capitalisation and punctuation)."""
    form = rng.choices(["simple", "adverb", "main_sub", "sub_main", "that"],
                       weights=[3, 3, 3, 2, 2])[0]
    if form == "simple":
        clause = _clause(rng, _tense(rng), allow_pp=True, adjective_p=0.3)
        return clause.en, clause.de_main()
    if form == "adverb":
        adv_en, adv_de, tenses = rng.choice(ADVERBS)
        clause = _clause(rng, _tense(rng, tenses), allow_pp=True, adjective_p=0.25)
        return (adv_en,) + clause.en, clause.de_main(front=(adv_de,))
    if form == "that":
        verb = rng.choice(SAYING)
        subject = _subject(rng, adjective_p=0.0)
        p = subject.person
        inner = _clause(rng, _tense(rng), allow_pp=False, adjective_p=0.15)
        en = subject.phrase.en + (verb.en[1] if p == 1 else verb.en[0], "that") + inner.en
        de = subject.phrase.de + (verb.de[1 + p], ",", "dass") + inner.de_subordinate()
        return en, de
    conj_en, conj_de = rng.choice(CONJUNCTIONS)
    main = _clause(rng, _tense(rng), allow_pp=False, adjective_p=0.1)
    sub = _clause(rng, _tense(rng, ("present", "perfect", "can")), allow_pp=False,
                  adjective_p=0.1)
    if form == "main_sub":
        return (main.en + (conj_en,) + sub.en,
                main.de_main() + (",", conj_de) + sub.de_subordinate())
    # A fronted subordinate clause takes the first position, so the main verb comes next.
    return ((conj_en,) + sub.en + (",",) + main.en,
            (conj_de,) + sub.de_subordinate() + (",",) + main.de_inverted())


def _render(words: tuple[str, ...]) -> str:
    text = " ".join(w for w in words if w).replace(" ,", ",")
    return text[0].upper() + text[1:] + "."


def _n_words(words: tuple[str, ...]) -> int:
    return sum(1 for w in words if w and w != ",")


def generate_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (English, German) sentence pairs, deterministic for a seed.

    Pairs are distinct on both sides (two English tenses can share one German sentence), so any
    split of the list gives held-out sets that never repeat a training sentence.
    """
    rng = random.Random(seed)
    seen_en: set[str] = set()
    seen_de: set[str] = set()
    pairs: list[tuple[str, str]] = []
    attempts = 0
    while len(pairs) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"the grammar cannot produce {n} distinct sentences")
        en_words, de_words = _sentence(rng)
        if not MIN_WORDS <= _n_words(en_words) <= MAX_WORDS:
            continue
        en, de = _render(en_words), _render(de_words)
        if en in seen_en or de in seen_de:
            continue
        seen_en.add(en)
        seen_de.add(de)
        pairs.append((en, de))
    return pairs


def vocabulary() -> tuple[set[str], set[str]]:
    """All English and all German word forms the grammar can produce (for docs and tests)."""
    en: set[str] = set()
    de: set[str] = set()
    rng = random.Random(0)
    for _ in range(20000):
        en_words, de_words = _sentence(rng)
        en.update(w.lower() for w in en_words if w and w != ",")
        de.update(w.lower() for w in de_words if w and w != ",")
    return en, de
