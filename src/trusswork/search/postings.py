"""Posting lists: sorted, unique uint32 ids; set operations and a compact encoding.

The TSDB series index and the log search inverted index answer queries by
combining posting lists: the ids of the series (or documents) that carry a
label value (or a term). Every function here runs in C (csrc/postings)
without the GIL once the lists are large.

Guarantees
----------
* Inputs are 1-d arrays of uint32 (used without a copy) or of another integer
  dtype (converted after a range check; ids must be in 0..2**32-1).
* Inputs must be sorted and unique. :func:`encode_postings` checks this;
  the set operations do not (it would cost more than a galloping
  intersection) and give an unspecified result for unsorted input.
* Outputs are new, sorted, unique, C-contiguous uint32 arrays.
* :func:`intersect` and :func:`difference` gallop through the longer list
  when it is 16 times the shorter: O(small * log(large / small)); otherwise
  they merge linearly. :func:`intersect_many` goes smallest first;
  :func:`union_many` merges through a heap, O(total * log k).
* :func:`encode_postings` writes blocks of 128 delta-encoded, bit-packed
  ids behind a skip table and a checksum (layout in csrc/postings/postings.h);
  :func:`decode_postings` checks all of it and raises
  :class:`~trusswork.core.errors.Corruption` naming the byte offset of the
  damage, never reading outside the given bytes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from trusswork.search._postings import decode_postings as decode_postings
from trusswork.search._postings import difference as difference
from trusswork.search._postings import encode_postings as encode_postings
from trusswork.search._postings import intersect as intersect
from trusswork.search._postings import intersect_many as intersect_many
from trusswork.search._postings import union as union
from trusswork.search._postings import union_many as union_many

__all__ = [
    "decode_postings",
    "difference",
    "encode_postings",
    "intersect",
    "intersect_many",
    "union",
    "union_many",
]

Postings = npt.NDArray[np.uint32]
"""A posting list: a 1-d array of sorted, unique uint32 ids."""
