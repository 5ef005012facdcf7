"""Implicit queries with executable programs: semantic, spatial and temporal, levels 1-4.

Given a scene, :func:`generate_query` picks a (category, level) cell and an intent of that
cell, fills its slots from the scene and the knowledge base, phrases it (a short phrase or
a full sentence, as ReasonSeg's ``is_sentence``), writes its program (:mod:`fastreasonseg.data.programs`)
and keeps it only if running the program on the noise-free twin gives a clear-cut,
non-trivial answer. The answer ids are the program's output, never chosen by hand.

Categories and levels (after RVTBench's semantic/spatial/temporal x L1-L4):

========  ===========================  ===============================  ===============================
level     semantic                     spatial                          temporal (videos only)
========  ===========================  ===============================  ===============================
L1        use, fact, synonym           global extreme (biggest, ...)    moving / still, enters / leaves
L2        group, property tag          label + extreme / region /       direction, first/last event,
                                       two nearest                      fastest / slowest
L3        out of place, tag and/minus  relation to / nearest to a ref   overtake, approach each other
L4        concept + size/depth         concept + relation; relation     concept + motion + depth/size;
                                       + extreme (two tool rounds)      fastest of a concept
========  ===========================  ===============================  ===============================

A level counts the hops: L1 one fact or one measurement, L2 a concept over several
categories or a label plus one measurement, L3 two hops (two concepts, or an object
related to another), L4 three or more (knowledge + relation + measurement). The table is
this project's reading of RVTBench's levels, which that paper defines by example.

In videos, spatial steps measure the first frame and the query says so ("at the start"),
because positions change over time. Colours are not used in queries: real detectors do
not report them, so a student must not learn to rely on them.

Modules: :mod:`.common` (the :class:`Query` record, a builder's context and draft, slot
helpers), one per column of the table (:mod:`.semantic`, :mod:`.spatial`, :mod:`.temporal`)
and :mod:`.generate` (the cell draw, phrasing and acceptance checks). The public names are
re-exported here.
"""

from fastreasonseg.data.queries.common import (
    CANDIDATE_GROUPS,
    CATEGORIES,
    GROUP_SINGULAR,
    LEVELS,
    Context,
    Draft,
    Query,
)
from fastreasonseg.data.queries.generate import BUILDERS, category_counts, generate_query

__all__ = ["BUILDERS", "CANDIDATE_GROUPS", "CATEGORIES", "GROUP_SINGULAR", "LEVELS", "Context", "Draft", "Query",
           "category_counts", "generate_query"]
