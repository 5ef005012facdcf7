"""Phrase banks for synthetic queries: many ways to say each intent, and the held-out phrasings.

Every list below is a set of interchangeable phrasings. A query's wording is a product of
choices (template x paraphrase of each slot x noun or synonym), so the same intent is
said hundreds of ways and a model cannot pass by memorising sentences.

Held-out phrasings: in every list of three or more options the **last** option is held
out. Training and validation queries never use a held-out option; the ``phrasing``
held-out test subset uses one in its template (and in every slot that has one), so it
measures whether a model generalises to wordings it never saw. :func:`pick` implements
the rule; the tests check that the train split never contains a held-out template.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Choice = str


def split_options(options: Sequence[Choice]) -> tuple[list[Choice], list[Choice]]:
    """(options for train/val, held-out options). Lists of fewer than three have nothing held out."""
    options = list(options)
    if len(options) < 3:
        return options, []
    return options[:-1], options[-1:]


def pick(rng: np.random.Generator, options: Sequence[Choice], holdout: bool = False) -> Choice:
    """One option: from the held-out part when ``holdout`` (if the list has one), else from the rest."""
    seen, held = split_options(options)
    pool = held if holdout and held else seen
    return pool[int(rng.integers(len(pool)))]


def held_out_options() -> set[str]:
    """Every held-out option of every list in this module (for tests and audits)."""
    out: set[str] = set()
    for value in list(globals().values()):
        lists = value.values() if isinstance(value, dict) else [value]
        for options in lists:
            if isinstance(options, (list, tuple)) and options and all(isinstance(o, str) for o in options):
                out.update(split_options(options)[1])
    return out


# --------------------------------------------------------------------------- slot paraphrases

BY_PHRASES: dict[tuple[str, str], list[str]] = {
    ("depth", "min"): ["closest to the camera", "nearest to the camera", "closest to us", "nearest to the viewer",
                       "in the foreground", "closest to me"],
    ("depth", "max"): ["farthest from the camera", "farthest away", "furthest back", "most distant",
                       "deepest in the scene", "furthest from me"],
    ("area", "max"): ["biggest", "largest", "that takes up the most space", "that looks the largest",
                      "most prominent", "that fills the most of the picture"],
    ("area", "min"): ["smallest", "tiniest", "that takes up the least space", "that looks the smallest",
                      "least prominent", "that covers the fewest pixels"],
    ("x", "min"): ["leftmost", "furthest to the left", "on the far left", "most to the left", "at the left edge"],
    ("x", "max"): ["rightmost", "furthest to the right", "on the far right", "most to the right", "at the right edge"],
    ("y", "min"): ["highest in the picture", "topmost", "highest up", "at the top of the image", "uppermost"],
    ("y", "max"): ["lowest in the picture", "bottommost", "lowest down", "at the bottom of the image", "nearest the bottom"],
}
# Comparatives for exactly two candidates ("the bigger of the two cups").
COMPARATIVES: dict[tuple[str, str], list[str]] = {
    ("depth", "min"): ["nearer", "closer"], ("depth", "max"): ["farther", "further away"],
    ("area", "max"): ["bigger", "larger"], ("area", "min"): ["smaller", "littler"],
    ("x", "min"): ["left"], ("x", "max"): ["right"], ("y", "min"): ["upper", "higher"],
    ("y", "max"): ["lower"],
}
# Whether the superlative goes before the noun ("the biggest cup") or after it ("the cup closest to the camera").
PREFIX_BY: frozenset[str] = frozenset({"biggest", "largest", "smallest", "tiniest", "leftmost", "rightmost",
                                       "topmost", "bottommost", "most prominent", "least prominent", "uppermost",
                                       "most distant"})

REL_PHRASES: dict[str, list[str]] = {
    "left_of": ["to the left of", "left of", "on the left side of", "on the left of"],
    "right_of": ["to the right of", "right of", "on the right side of", "on the right of"],
    "above": ["above", "higher up than", "over", "higher in the picture than"],
    "below": ["below", "lower down than", "beneath", "lower in the picture than"],
    "in_front_of": ["in front of", "closer to the camera than", "nearer to us than", "ahead of"],
    "behind": ["behind", "farther back than", "further from the camera than", "beyond"],
}
NEAREST_PHRASES = ["closest to", "nearest to", "next to", "nearest", "right beside"]

REGION_PHRASES: dict[str, list[str]] = {
    "top-left": ["in the top left corner", "at the top left", "in the upper left"],
    "top": ["at the top", "at the top middle", "in the upper middle"],
    "top-right": ["in the top right corner", "at the top right", "in the upper right"],
    "left": ["on the left", "on the left side", "at the middle left"],
    "center": ["in the middle", "in the center", "in the centre of the picture"],
    "right": ["on the right", "on the right side", "at the middle right"],
    "bottom-left": ["in the bottom left corner", "at the bottom left", "in the lower left"],
    "bottom": ["at the bottom", "at the bottom middle", "in the lower middle"],
    "bottom-right": ["in the bottom right corner", "at the bottom right", "in the lower right"],
}

GROUP_NAMES: dict[str, list[str]] = {
    "animal": ["animals", "creatures", "animals in the scene"],
    "vehicle": ["vehicles", "means of transport", "things you can ride or drive"],
    "food": ["food", "things to eat", "food items"],
    "furniture": ["furniture", "pieces of furniture", "furnishings"],
    "electronics": ["electronic devices", "gadgets", "electronics"],
    "clothing": ["clothes", "pieces of clothing", "garments"],
    "tool": ["tools", "hand tools", "implements"],
    "instrument": ["musical instruments", "instruments", "things you can make music with"],
    "toy": ["toys", "playthings", "things to play with"],
    "utensil": ["utensils", "cutlery and utensils", "eating and cooking utensils"],
    "tableware": ["dishes", "tableware", "crockery"],
    "stationery": ["stationery", "office supplies", "school supplies"],
    "sports": ["sports gear", "sports equipment", "things for playing sports"],
    "plant": ["plants", "greenery", "growing things"],
    "appliance": ["appliances", "household appliances", "machines around the house"],
    "person": ["people", "humans", "human beings"],
    "container": ["containers", "things that hold stuff", "receptacles"],
}
# tag -> (noun phrase for "all the ...", relative clause "that ...", negative relative clause "that ...")
TAG_PHRASES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "edible": (["things you can eat", "edible things", "food you could eat"], ["you can eat", "are edible"],
               ["you cannot eat", "are not edible"]),
    "sharp": (["sharp things", "things that could cut you", "sharp objects"], ["are sharp", "could cut you"],
              ["are not sharp", "could not cut you"]),
    "electronic": (["things that need electricity", "electrical things", "things you plug in"],
                   ["need electricity", "run on power"], ["need no electricity", "work without power"]),
    "alive": (["living things", "things that are alive", "everything alive"], ["are alive", "are living"],
              ["are not alive", "are not living"]),
    "wheeled": (["things with wheels", "objects on wheels", "wheeled things"], ["have wheels", "roll on wheels"],
                ["have no wheels", "do not roll"]),
    "container": (["things you can put stuff in", "containers", "things that hold other things"],
                  ["can hold things", "you can fill"], ["cannot hold anything", "you cannot fill"]),
    "wearable": (["things you can wear", "wearable things", "things to put on"], ["you can wear", "are worn"],
                 ["you cannot wear", "nobody wears"]),
    "fragile": (["fragile things", "things that break easily", "breakable objects"], ["could break", "are fragile"],
                ["are not fragile", "would not break"]),
    "soft": (["soft things", "squishy things", "things that are soft to touch"], ["are soft", "feel soft"],
             ["are not soft", "feel hard"]),
    "hot": (["things that get hot", "hot things", "things that could burn you"], ["get hot", "could burn you"],
            ["never get hot", "could not burn you"]),
    "light_source": (["things that give light", "light sources", "things that light up"], ["give off light", "light up"],
                     ["give no light", "do not light up"]),
    "readable": (["things you can read", "things with writing on them", "readable things"],
                 ["you can read", "have text on them"], ["you cannot read", "have no text"]),
    "toy": (["toys", "things children play with", "playthings"], ["are toys", "children play with"],
            ["are not toys", "are not for playing"]),
    "flying": (["things that fly", "flying things", "things up in the air"], ["can fly", "fly"],
               ["cannot fly", "stay on the ground"]),
    "pet": (["pets", "animals people keep at home", "household pets"], ["are pets", "people keep as pets"],
            ["are not pets", "nobody keeps as a pet"]),
    "fruit": (["fruit", "pieces of fruit", "fruits"], ["are fruit", "grow as fruit"],
              ["are not fruit", "are not fruits"]),
    "sweet": (["sweet things", "sweets and treats", "sugary things"], ["are sweet", "taste sweet"],
              ["are not sweet", "are not sugary"]),
    "heavy": (["heavy things", "things that are hard to lift", "weighty objects"], ["are heavy", "are hard to lift"],
              ["are light", "are easy to lift"]),
}

KIND_WORDS: dict[str, list[str]] = {
    "animal": ["animal", "creature", "animal"], "person": ["person", "one", "person"],
    "vehicle": ["vehicle", "thing", "vehicle"], "food": ["food", "thing", "item"],
}
THING_WORDS = ["thing", "object", "item", "one", "thing"]

# --------------------------------------------------------------------------- templates
# {x} slots are filled by the query builders. Short phrases first, then full sentences.

SHORT: dict[str, list[str]] = {
    "use": ["something to {use}", "the thing used to {use}", "what you would use to {use}", "an object to {use}",
            "the item for when you want to {use}", "whatever lets me {use}", "the tool I'd need to {use}"],
    "fact": ["the {kind} that {fact}", "the {kind} which {fact}", "that {kind} that {fact}", "whichever {kind} {fact}"],
    "synonym": ["the {syn}", "that {syn}", "the {syn} here", "this {syn}"],
    "group": ["all the {group}", "every one of the {group}", "the {group}", "all of the {group} here",
              "each of the {group}"],
    "tag": ["all the {tag}", "the {tag}", "every one of the {tag}", "any {tag}", "the {tag} in view"],
    "outlier": ["the thing that does not belong in a {place}", "the object out of place here",
                "what doesn't belong in this {place}", "the odd one out in this {place}",
                "the item that seems misplaced"],
    "tag_combo": ["the {a} that {b}", "those {a} that {b}", "any {a} that {b}", "the {a} which {b}"],
    "concept_extreme": ["the {by_pre}{concept}{by_post}", "of the {concepts}, the one {by_after}",
                        "the {concept} {by_after}", "among the {concepts}, whichever is {by_is}"],
    "global_extreme": ["the {by_pre}object{by_post}", "the thing {by_after}", "whatever is {by_is}",
                       "the item {by_after}", "the one {by_after}"],
    "label_extreme": ["the {by_pre}{label}{by_post}", "the {label} {by_after}", "the {label} that is {by_is}",
                      "whichever {label} is {by_is}"],
    "label_compare": ["the {cmp} {label}", "the {cmp} of the two {labels}", "the {cmp} one of the {labels}"],
    "label_region": ["the {label} {region}", "the {label} that is {region}", "that {label} {region}"],
    "depth_rank": ["the {n} {labels} {by_after}", "the {n} {labels} that are {by_after}", "those {n} {labels} {by_after}"],
    "relation": ["the {label} {rel} the {ref}", "the {label} that is {rel} the {ref}",
                 "whichever {label} is {rel} the {ref}", "any {label} {rel} the {ref}"],
    "nearest_ref": ["the {label} {near} the {ref}", "the {label} that is {near} the {ref}",
                    "the {label} found {near} the {ref}", "whichever {label} is {near} the {ref}"],
    "concept_relation": ["the {concept} {rel} the {ref}", "the {concept} that is {rel} the {ref}",
                         "whatever {concept_rel} and is {rel} the {ref}"],
    "concept_nearest": ["the {concept} {near} the {ref}", "the {concept} that is {near} the {ref}",
                        "whatever {concept_rel} {near} the {ref}"],
    "relation_extreme": ["of the {labels} {rel} the {ref}, the {by_short}",
                         "the {by_pre}{label}{by_post} among those {rel} the {ref}",
                         "among the {labels} {rel} the {ref}, the one {by_after}"],
    "moving": ["the {label} that is {moving}", "the {moving_adj} {label}", "the {label} {moving}",
               "whichever {label} is {moving}"],
    "enters": ["the {label} that {enters}", "the {label} {enters_ing}", "whichever {label} {enters}"],
    "direction": ["the {label} {dir_ing}", "the {label} that is {dir_ing}", "whichever {label} is {dir_ing}"],
    "event": ["the {label} that {event_phrase}", "whichever {label} {event_phrase}",
              "the {label} {event_ing}"],
    "fastest": ["the {speed_adj} {label}", "the {label} that moves {speed_adv}", "the {label} moving {speed_adv}",
                "whichever {label} is {speed_adj}"],
    "overtake": ["the {a} that overtakes the {b}", "the {a} passing the {b}", "the {a} that gets ahead of the {b}",
                 "the {a} that catches up with and passes the {b}"],
    "overtaken": ["the {b} that gets overtaken by the {a}", "the {b} the {a} passes", "the {b} that falls behind the {a}",
                  "the {b} left behind by the {a}"],
    "approach": ["the {a} and the {b} moving towards each other", "the {a} and {b} that approach each other",
                 "the two that come together", "the {a} and the {b} heading for each other"],
    "concept_motion_extreme": ["of the moving {concepts}, the one {by_after}", "the moving {concept} {by_after}",
                               "the {concept} in motion that is {by_is}"],
    "concept_fastest": ["the {speed_adj} {concept}", "the {concept} that moves {speed_adv}",
                        "whichever {concept} is {speed_adj}"],
}

LONG: dict[str, list[str]] = {
    "use": ["I want to {use}. Which object in the scene should I use?",
            "If someone needed to {use}, what here would they reach for?",
            "Point out the object that would let me {use}.",
            "Which of these things could be used to {use}?",
            "Show me what in this picture I could use to {use}.",
            "Imagine you have to {use} right now; what in this picture would you grab?"],
    "fact": ["Which {kind} in this picture {fact}?", "Find the {kind} that {fact}.",
             "Can you show me the {kind} in the scene that {fact}?", "Point to the {kind} that {fact}, please.",
             "Somewhere in this scene there is a {kind} that {fact}; where is it?"],
    "synonym": ["Where is the {syn} in this scene?", "Can you find the {syn} for me?", "Please highlight the {syn}.",
                "I am looking for the {syn}; which one is it?"],
    "group": ["Highlight every one of the {group} you can see.", "Which objects in the scene are {group}?",
              "Show me all the {group} in this picture.", "Mark all of the {group}, please.",
              "I'd like to see every item here that counts as {group}."],
    "tag": ["Which objects here are {tag}?", "Please find all the {tag} in this scene.",
            "Show me every one of the {tag} you can spot.", "Can you mark the {tag} in the picture?",
            "Go through the scene and pick out the {tag}."],
    "outlier": ["One of these objects does not belong in a {place}. Which one is it?",
                "Something in this {place} looks out of place; what is it?",
                "Find the item that you would not normally see in a {place}.",
                "Which thing here seems misplaced for a {place}?",
                "Spot the object that has no business being in a {place}."],
    "tag_combo": ["Which of the {a} here {b}?", "Show me the {a} that {b}.", "Among the {a}, find the ones that {b}.",
                  "Please mark every one of the {a} that {b}.", "I only want the {a} that {b}; which are they?"],
    "concept_extreme": ["Of all the {concepts} in the scene, which one is {by_is}?",
                        "Find the {concept} that is {by_is}.",
                        "There are several {concepts} here; show me the one {by_after}.",
                        "Which {concept} would you say is {by_is}?"],
    "global_extreme": ["Which object in the scene is {by_is}?", "Show me the thing that is {by_is}.",
                       "What is {by_is} in this picture?", "Point out whatever is {by_is}.",
                       "Looking at the whole scene, which item is {by_is}?"],
    "label_extreme": ["Which {label} is {by_is}?", "There are several {labels}; show me the one {by_after}.",
                      "Find the {label} that is {by_is}.", "Of the {labels} in the scene, which is {by_is}?",
                      "Out of all those {labels}, point to the one {by_after}."],
    "label_compare": ["There are two {labels}; which is the {cmp} one?", "Show me the {cmp} of the two {labels}.",
                      "Which of the two {labels} is the {cmp} one?"],
    "label_region": ["Which {label} is {region}?", "Show me the {label} {region} of the picture.",
                     "Find the {label} that sits {region}.", "I mean the {label} {region}; where is it?"],
    "depth_rank": ["Show me the {n} {labels} that are {by_is}.", "Which {n} {labels} are {by_is}?",
                   "Find the {n} {labels} {by_after}.", "Mark the {n} {labels} that are {by_is}, please."],
    "relation": ["Which {label} is {rel} the {ref}?", "Find the {label} that is {rel} the {ref}.",
                 "Show me any {label} {rel} the {ref}.", "I need the {label} {rel} the {ref}; where is it?",
                 "Look at the {ref}; which {label} is {rel} it?"],
    "nearest_ref": ["Which {label} is {near} the {ref}?", "Find the {label} {near} the {ref}.",
                    "Show me the {label} that is {near} the {ref}.", "Look at the {ref}; which {label} is {near} it?"],
    "concept_relation": ["Which {concept} is {rel} the {ref}?", "Find the {concept} that is {rel} the {ref}.",
                         "Show me anything that {concept_rel} and is {rel} the {ref}.",
                         "Look at the {ref}: what {concept_rel} and is {rel} it?"],
    "concept_nearest": ["Which {concept} is {near} the {ref}?", "Find the {concept} {near} the {ref}.",
                        "Show me what {concept_rel} and is {near} the {ref}.",
                        "Look at the {ref}: which {concept} is {near} it?"],
    "relation_extreme": ["Of the {labels} {rel} the {ref}, which one is {by_is}?",
                         "Look at the {labels} {rel} the {ref} and show me the one {by_after}.",
                         "Among the {labels} that are {rel} the {ref}, find the one {by_after}."],
    "moving": ["Which {label} is {moving}?", "Show me the {label} that is {moving}.",
               "Find the {moving_adj} {label} in this video.", "There are several {labels}; which one is {moving}?",
               "In this clip, point out the {label} that is {moving}."],
    "enters": ["Which {label} {enters}?", "Show me the {label} that {enters}.", "Find the {label} that {enters} during the clip.",
               "Watch the video: which {label} {enters}?"],
    "direction": ["Which {label} is {dir_ing}?", "Show me the {label} that is {dir_ing}.",
                  "Find the {label} {dir_ing} in this clip.", "Watch closely: which {label} is {dir_ing}?"],
    "event": ["Which {label} {event_phrase}?", "Show me the {label} that {event_phrase}.",
              "Of the {labels}, which one {event_phrase}?", "Watch the clip and tell me which {label} {event_phrase}."],
    "fastest": ["Which {label} moves {speed_adv}?", "Show me the {speed_adj} {label} in the video.",
                "Of the {labels}, which one is {speed_adj}?", "Find the {label} that is moving {speed_adv}.",
                "Watching the clip, which {label} would you call the {speed_adj}?"],
    "overtake": ["Which {a} overtakes the {b}?", "Show me the {a} that passes the {b}.",
                 "In this video, find the {a} that gets ahead of the {b}.",
                 "Something overtakes the {b}; which {a} is it?"],
    "overtaken": ["Which {b} gets overtaken by the {a}?", "Show me the {b} that the {a} passes.",
                  "Find the {b} that ends up behind the {a}.", "The {a} passes something; which {b} is it?"],
    "approach": ["Which two are moving towards each other?", "Show me the {a} and the {b} that approach each other.",
                 "Find the pair heading for each other in this clip.", "Who is walking towards whom in this video?"],
    "concept_motion_extreme": ["Of the {concepts} that are moving, which one is {by_is}?",
                               "Find the moving {concept} {by_after}.",
                               "Among the {concepts} in motion, show me the one {by_after}."],
    "concept_fastest": ["Which {concept} moves {speed_adv}?", "Show me the {speed_adj} {concept} in this clip.",
                        "Of all the {concepts}, which one is {speed_adj}?",
                        "Find the {concept} that is moving {speed_adv}."],
}

MOVING_WORDS: dict[bool, tuple[list[str], list[str]]] = {
    # (verb phrase after "is", adjective before the noun)
    True: (["moving", "in motion", "on the move", "not standing still"], ["moving", "travelling", "mobile"]),
    False: (["standing still", "not moving", "staying put", "stationary"], ["motionless", "still", "stationary"]),
}
ENTER_WORDS: dict[str, tuple[list[str], list[str]]] = {
    # (verb phrase, -ing phrase)
    "enters": (["enters the scene", "comes into view", "appears partway through", "shows up later"],
               ["entering the scene", "coming into view", "arriving"]),
    "leaves": (["leaves the scene", "goes out of view", "exits the frame", "disappears before the end"],
               ["leaving the scene", "going out of view", "exiting"]),
}
DIRECTION_WORDS: dict[str, list[str]] = {
    "left": ["moving to the left", "heading left", "going leftwards", "travelling to the left"],
    "right": ["moving to the right", "heading right", "going rightwards", "travelling to the right"],
    "toward camera": ["coming toward the camera", "approaching the camera", "heading towards us",
                      "moving closer to the camera"],
    "away": ["moving away from the camera", "heading away from us", "going into the distance",
             "moving farther away"],
}
EVENT_WORDS: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("first_seen", "first"): (["appears first", "shows up first", "is seen earliest"], ["seen first", "appearing first"]),
    ("first_seen", "last"): (["appears last", "shows up last", "is the last to appear"], ["appearing last", "arriving last"]),
    ("last_seen", "first"): (["disappears first", "is the first to leave the view", "vanishes earliest"],
                             ["disappearing first", "leaving first"]),
    ("last_seen", "last"): (["stays in view the longest", "is the last one still visible", "disappears last"],
                            ["staying longest", "remaining last"]),
    ("starts_moving", "first"): (["starts moving first", "is the first to get going", "sets off first"],
                                 ["starting first", "setting off first"]),
    ("stops_moving", "first"): (["stops first", "is the first to come to a halt", "halts earliest"],
                                ["stopping first", "halting first"]),
}
SPEED_WORDS: dict[str, tuple[list[str], list[str]]] = {
    # (adjective, adverb phrase)
    "max": (["fastest", "quickest", "speediest"], ["the fastest", "most quickly", "at the highest speed"]),
    "min": (["slowest", "most sluggish", "least hurried"], ["the slowest", "most slowly", "at the lowest speed"]),
}
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}
