"""HKD Explorer core: hierarchical K-way D-dimensional codes of embeddings.

No Dash imports here: everything is usable from a notebook or ``python -m hkd_core``.

Where things live:
  datasets/        Dataset records (embeddings + names + labels + metric) and loaders
  models/hkd.py    the HKD estimator (encoder, relaxation, decoder, training loop)
  models/modules.py  small torch modules (encoder MLP, code relaxation, Proj, decoder)
  models/loss.py   the pt-SEE exemplar KL and the HKD objective (eq. 7-13)
  models/exemplars.py  exemplar selection and perplexity calibration (eq. 8)
  models/dccl.py, kd.py, hkm.py, rq.py, random_codes.py  the baselines
  metrics.py       neighbour sharing, search reduction, reconstruction, code statistics, mAHP
  distances.py     squared Euclidean and Poincare distances
  tree.py          prefix groups of codes, sunburst frames
  index.py         the prefix index: CodeTree (prefix ranges) and PrefixIndex (multi-probe
                   search over the code tree, exact re-rank, npz save/load)
"""

__version__ = "0.1.0"
