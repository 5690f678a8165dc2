"""The benchmark: one protocol for every dataset and coder.

    protocol.py  train / validation / test rows (what fits, what chooses, what is reported)
    run.py       datasets x coders: cached fits, validation choice, test figures over seeds
    report.py    printed tables, results.json, share-vs-reduction plots

``python -m hkd_core benchmark [--quick]`` runs it (hkd_core/cli.py only parses).
"""
