"""``python -m bench``: the hot paths against an empty-handler gRPC baseline (bench/harness.py).

    python -m bench [--seconds 10] [--warmup 2] [--concurrency 32] [--quick] ...

``python -m bench blacklist [--entries N] ...`` runs the blacklist benchmark instead
(bench/blacklist.py), ``python -m bench delivery [--seconds 5] ...`` the push-delivery
benchmark (bench/delivery.py), and ``python -m bench replicas ...`` submissions with one and two
replicas on PostgreSQL and one on SQLite (bench/replicas.py), and ``python -m bench reconcile``
a bank's day statement against its pure arithmetic (bench/reconciliation.py).
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["blacklist"]:
        from bench.blacklist import main as blacklist_main

        blacklist_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["delivery"]:
        from bench.delivery import main as delivery_main

        delivery_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["reconcile"]:
        from bench.reconciliation import main as reconcile_main

        reconcile_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["replicas"]:
        from bench.replicas import main as replicas_main

        replicas_main(sys.argv[2:])
        return
    from bench.harness import main as harness_main

    harness_main(sys.argv[1:])


if __name__ == "__main__":
    main()
