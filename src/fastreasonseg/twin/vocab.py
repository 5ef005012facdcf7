"""Label normalisation for the DT tools: case, plurals, synonyms and "is a kind of" links.

The reasoner asks for objects by the words in the query ("cups", "the man", "sofa") while
the detector labels them with its own vocabulary ("cup", "person", "couch"). The rule that
``filter_label``/``count`` use, in order:

1. Normalise both words: lower case, punctuation and underscores to spaces, leading
   articles/quantifiers dropped ("the", "a", "an", "some", "all"), every word singularised
   (irregular table first: people -> person, knives -> knife, children -> child; then
   -ies -> -y, -ches/-shes/-sses/-xes/-zes -> drop "es", otherwise a final "s" is dropped
   unless the word ends in ss/us/is).
2. Map synonyms to one canonical word (sofa -> couch, bike -> bicycle, tv -> television...).
3. A query matches a label when the canonical forms are equal, when the label's last word
   (its head noun) equals the query ("table" matches "dining table", but "dining table"
   does not match "table": the query is then more specific than the twin can tell), or when
   one is a kind of the other ("person" matches "man"/"woman"/"child"; "man" matches
   "person", because a detector label "person" may well be a man, but "man" never matches
   "woman").

Hand-written instead of a lemmatiser (nltk/spacy): those need model downloads and are big
for a rule set this small; the categories we see are detector vocabularies (COCO/LVIS-like
nouns), where these rules are enough. The paper does not describe label matching.
"""

from __future__ import annotations

import re

# Plural -> singular for words the suffix rules get wrong.
IRREGULAR_PLURALS: dict[str, str] = {
    "people": "person", "persons": "person", "men": "man", "women": "woman", "children": "child",
    "mice": "mouse", "feet": "foot", "teeth": "tooth", "geese": "goose", "oxen": "ox", "sheep": "sheep",
    "deer": "deer", "fish": "fish", "knives": "knife", "wives": "wife", "lives": "life", "leaves": "leaf",
    "shelves": "shelf", "wolves": "wolf", "halves": "half", "loaves": "loaf", "calves": "calf",
    "scarves": "scarf", "thieves": "thief", "tomatoes": "tomato", "potatoes": "potato", "heroes": "hero",
    "buses": "bus", "dice": "die", "cacti": "cactus", "glasses": "glass", "skis": "ski",
    "series": "series", "species": "species", "scissors": "scissors", "pants": "pants", "jeans": "jeans",
}

# Words that are the same thing: synonym -> canonical.
SYNONYMS: dict[str, str] = {
    "sofa": "couch", "settee": "couch",
    "bike": "bicycle", "motorbike": "motorcycle", "scooter": "motorcycle",
    "tv": "television", "telly": "television",
    "automobile": "car", "auto": "car",
    "aeroplane": "airplane", "plane": "airplane", "aircraft": "airplane",
    "phone": "cell phone", "cellphone": "cell phone", "mobile phone": "cell phone", "smartphone": "cell phone",
    "mobile": "cell phone",
    "human": "person", "pedestrian": "person", "adult": "person", "individual": "person",
    "kid": "child", "toddler": "child",
    "puppy": "dog", "kitten": "cat",
    "mug": "cup",
    "doughnut": "donut",
    "hand bag": "handbag", "purse": "handbag",
    "rucksack": "backpack",
    "fridge": "refrigerator",
    "notebook computer": "laptop",
    "ship": "boat",
    "bin": "trash can", "garbage can": "trash can", "dustbin": "trash can",
    "lorry": "truck",
}

# canonical word -> the broader canonical word it is a kind of (one level; chains are followed).
KIND_OF: dict[str, str] = {
    "man": "person", "woman": "person", "child": "person", "boy": "child", "girl": "child",
    "baby": "child", "cyclist": "person", "player": "person", "rider": "person", "skier": "person",
    "surfer": "person", "skateboarder": "person",
    "handbag": "bag", "backpack": "bag", "suitcase": "bag",
    "puppy": "dog", "kitten": "cat",
    "pickup": "truck", "van": "car", "taxi": "car", "suv": "car",
}

_ARTICLES = frozenset({"the", "a", "an", "some", "all", "any", "every", "each", "this", "that", "these", "those"})
_NON_WORD = re.compile(r"[^a-z0-9]+")


def singular(word: str) -> str:
    """One lower-case word in its singular form (rules in the module docstring)."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalize_label(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, each word singular, synonyms mapped."""
    words = [w for w in _NON_WORD.sub(" ", str(text).lower()).split() if w]
    while len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    phrase = " ".join(singular(w) for w in words)
    if phrase in SYNONYMS:
        return SYNONYMS[phrase]
    if words and len(words) > 1:
        # map the head noun's synonym too: "small sofa" -> "small couch"
        head = singular(words[-1])
        if head in SYNONYMS and " " not in SYNONYMS[head]:
            phrase = " ".join([*(singular(w) for w in words[:-1]), SYNONYMS[head]])
    return phrase


def _ancestors(canonical: str) -> list[str]:
    chain = []
    seen = {canonical}
    current = canonical
    while current in KIND_OF and KIND_OF[current] not in seen:
        current = KIND_OF[current]
        chain.append(current)
        seen.add(current)
    return chain


def label_matches(query: str, label: str) -> bool:
    """Whether the word(s) ``query`` name objects labelled ``label`` (rule in the module docstring)."""
    q = normalize_label(query)
    lab = normalize_label(label)
    if not q or not lab:
        return False
    candidates = [lab]
    if " " in lab:
        candidates.append(lab.rsplit(" ", 1)[1])  # head noun: "dining table" -> "table"
    for cand in candidates:
        if cand == q or q in _ancestors(cand) or cand in _ancestors(q):
            return True
    return False
