"""Plan: what a sync would change, computed against the live cluster.

:mod:`.planner` orchestrates (resolve kinds, read live state with one LIST per kind and namespace,
dry-run what may have changed, compare); :mod:`.model` is the plan it returns; :mod:`.stamp` the
marks slipway puts on what it applies; :mod:`.conflicts` the three kinds of conflict;
:mod:`.normalize`, :mod:`.impact`, :mod:`.mask` and :mod:`.textdiff` the comparison, the rule
table of impact levels, Secret masking and the printed diff.
"""
