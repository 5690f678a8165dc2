"""Write a small synthetic CIFAR-100 archive in the exact official format (for tests and demos).

    python scripts/make_fake_cifar100.py --out /tmp/fake-cifar [--n-train 500 --n-test 100 --seed 0]

writes /tmp/fake-cifar/cifar-100-python.tar.gz: Python-2-style protocol-2 pickles ``train``,
``test``, ``meta`` in a ``cifar-100-python/`` folder, the real 100 class and 20 superclass names
and assignment, synthetic images (a colour per superclass, a blob per class, noise). Never the
real data. Then e.g. ``python -m hkd_core train --dataset cifar100 --data-dir /tmp/fake-cifar ...``.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hkd_core.datasets.cifar100 import write_cifar100_archive  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory (or .tar.gz path) to write")
    parser.add_argument("--n-train", type=int, default=500, help="training images (default 500)")
    parser.add_argument("--n-test", type=int, default=100, help="test images (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        path = write_cifar100_archive(args.out, args.n_train, args.n_test, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {args.n_train} train + {args.n_test} test images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
