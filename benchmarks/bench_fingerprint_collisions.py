"""Ten million realistic label sets, fingerprinted: assert no two distinct sets collide.

The stream fingerprint is XXH64 of the canonical label bytes (FORMAT.md
section 1).  The store compares canonical bytes too, so a collision would not
corrupt data, but it would cost a slow path; with 64 bits the expected number
of colliding pairs among 10**7 sets is about 3e-6.  This script checks it on
label sets shaped like a Kubernetes fleet's (2-8 labels, see
``harness.label_sets``) and reports the time.

Numpy-free: fingerprints go into an ``array('Q')``, which is sorted, and
equal neighbours are looked for.  Equal fingerprints are then resolved by
regenerating the sets (deterministic from the seed) and comparing their
bytes: equal bytes are a duplicate label set, not a collision.  ``--smoke``
does 100k sets.

    python benchmarks/bench_fingerprint_collisions.py [--count 10000000] [--smoke]
"""

from __future__ import annotations

import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = harness.make_parser(__doc__.split("\n\n")[0], default_size_mb=0.001, smoke_size_mb=0.001)
    p.add_argument("--count", type=int, default=10_000_000, help="label sets (default 10M)")
    args = harness.parse_args(p, argv)
    n = 100_000 if args.smoke else args.count
    try:
        from chunkstore import _kernels as K
    except Exception as e:  # noqa: BLE001
        print(f"bench_fingerprint_collisions: cannot import chunkstore._kernels: {e}",
              file=sys.stderr)
        return 2
    info = harness.machine_info()
    print(harness.machine_line(info))
    fp = K.hashing.fingerprint_canonical

    fps = array("Q")
    append = fps.append
    t0 = time.perf_counter()
    gen_s = hash_s = 0.0
    chunk = 100_000
    sets = harness.label_sets(n, seed=args.seed)
    total_bytes = 0
    done = 0
    while done < n:
        t = time.perf_counter()
        batch = [next(sets) for _ in range(min(chunk, n - done))]
        gen_s += time.perf_counter() - t
        t = time.perf_counter()
        for c in batch:
            append(fp(c))
        hash_s += time.perf_counter() - t
        total_bytes += sum(map(len, batch))
        done += len(batch)
        if not args.smoke and done % 1_000_000 == 0:
            print(f"  {done:,} fingerprints ({time.perf_counter() - t0:.0f}s)", flush=True)

    t = time.perf_counter()
    ordered = sorted(fps)
    dup_fps = {a for a, b in zip(ordered, ordered[1:], strict=False) if a == b}
    del ordered
    sort_s = time.perf_counter() - t

    collisions = 0
    duplicate_sets = 0
    if dup_fps:
        # Rare: regenerate, keep the bytes of the sets behind the repeated values.
        by_fp: dict[int, set[bytes]] = {}
        seen: dict[int, int] = {}
        for c, f in zip(harness.label_sets(n, seed=args.seed), fps, strict=True):
            if f in dup_fps:
                by_fp.setdefault(f, set()).add(c)
                seen[f] = seen.get(f, 0) + 1
        for f, group in by_fp.items():
            collisions += len(group) - 1
            duplicate_sets += seen[f] - len(group)
    total_s = time.perf_counter() - t0

    rows = [{
        "label sets": n,
        "mean bytes": round(total_bytes / n, 1),
        "generate (Python)": f"{gen_s:.1f} s",
        "fingerprint": f"{hash_s:.2f} s ({hash_s / n * 1e9:.0f} ns each)",
        "sort + scan": f"{sort_s:.1f} s",
        "total": f"{total_s:.1f} s",
        "duplicate sets": duplicate_sets,
        "collisions": collisions,
    }]
    notes = [f"kernels {'compiled' if K.ACCELERATED else 'pure Python'}; "
             f"expected colliding pairs for n={n:,} at 64 bits: {n * (n - 1) / 2 / 2**64:.1e}"]
    harness.report("Fingerprint collisions", rows, smoke=not args.record, notes=notes, info=info)
    if collisions:
        print(f"bench_fingerprint_collisions: {collisions} COLLISIONS among {n:,} label sets",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
