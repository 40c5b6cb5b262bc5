"""The feature tables of the ``binary_classifier`` objective: tabular time series of rare
events, read top to bottom in this order.

- ``synthetic``: a generated series to sweep on without real data
- ``files``: the table on disk (Parquet or CSV)
- ``config``: the spec's settings (:class:`TabularConfig`) and the tier's feature columns
- ``splits``: leak-free chronological train / val / test splits
- ``dataset``: the checked, standardised table (:class:`BinaryData`) and its batches of windows
- ``check``: the pre-launch look at a table (``hpo check``, ``hpo data``)

A table is one row per time step: a time column, feature columns and a 0/1 label. The public
names are exported by :mod:`hpo_core.data`; only numpy and pandas are imported here.
"""
