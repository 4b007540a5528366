"""Deep MIML parts (torch). Imported only on use: ``import mimlkit`` never loads this package.

Sub-modules: ``trainer`` (the shared training loop), ``losses`` (multi-label and
single-positive losses), ``spmll`` (single-positive protocol tools), ``heads``
(``MultiLabelHead``, ``MultiLabelCNN``), ``deepmiml`` (DeepMIML).
"""
