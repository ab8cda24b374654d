"""The built-in English->German grammar: aligned, deterministic, and needing reordering."""
from fairseq_mgcm.data.synthetic.grammar import MAX_WORDS, MIN_WORDS, generate_pairs, vocabulary
from fairseq_mgcm.data.synthetic.text_sources import grammar_splits


def test_deterministic_and_seeded():
    assert generate_pairs(50, seed=3) == generate_pairs(50, seed=3)
    assert generate_pairs(50, seed=3) != generate_pairs(50, seed=4)


def test_pairs_are_well_formed_and_distinct():
    pairs = generate_pairs(500, seed=0)
    assert len({en for en, _ in pairs}) == 500 and len({de for _, de in pairs}) == 500
    for en, de in pairs:
        assert MIN_WORDS <= len(en.split()) <= MAX_WORDS
        assert en[0].isupper() and de[0].isupper()
        assert en.endswith(".") and de.endswith(".")
        assert "  " not in en and "  " not in de and " ," not in de


def test_reordering_phenomena_present():
    pairs = generate_pairs(2000, seed=0)
    by_en = dict(pairs)
    german = [de for _, de in pairs]
    # verb-final subordinate clauses
    assert any(", weil " in de and de.endswith(("sieht.", "hat.", "kann.")) for de in german)
    # V2 after a fronted adverb: "Heute sieht der Mann ..." (verb right after the adverb)
    assert any(de.startswith("Gestern hat ") or de.startswith("Gestern sind ") for de in german)
    # participle / infinitive at the end
    assert any(de.startswith("Morgen wird ") for de in german)
    # dative before accusative with a ditransitive verb
    gives = [(en, de) for en, de in pairs if " gives " in en and " to the " in en]
    assert gives and all(" dem " in de or " der " in de for _, de in gives)
    # case and gender agreement
    assert any(" den " in de for de in german) and any(" einen " in de for de in german)
    assert any(" dem " in de for de in german)
    assert by_en  # pairs are aligned one to one


def test_specific_translations():
    pairs = generate_pairs(40, seed=1)
    for pair in [
        ("I show a letter to the cat.", "Ich zeige der Katze einen Brief."),
        ("We have run while the father sings.", "Wir sind gelaufen, während der Vater singt."),
        ("Yesterday a bird played in the park.", "Gestern hat ein Vogel im Park gespielt."),
        ("Although he sees the girl, the bird will buy a window.",
         "Obwohl er das Mädchen sieht, wird der Vogel ein Fenster kaufen."),
        ("A happy horse has loved my apple.", "Ein glückliches Pferd hat meinen Apfel geliebt."),
    ]:
        assert pair in pairs


def test_small_vocabulary():
    en, de = vocabulary()
    assert 80 <= len(en) <= 200
    assert len(de) <= 260


def test_held_out_splits_do_not_overlap_train():
    splits = grammar_splits(300, 30, 30, seed=1)
    train = set(splits["train"])
    assert len(splits["train"]) == 300
    assert not train & set(splits["dev"]) and not train & set(splits["tst-COMMON"])
    train_de = {de for _, de in splits["train"]}
    assert not train_de & {de for _, de in splits["dev"]}
