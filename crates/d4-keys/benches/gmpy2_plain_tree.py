#!/usr/bin/env python3
"""Reference for the batch GCD benchmark (not part of the build): the plain product and
remainder tree of KEYS.md §3 in gmpy2, one thread, over the benchmark's cached corpus.

    python3 gmpy2_plain_tree.py <target>/keys-bench/corpus-rsa1024.bin N

Prints product, remainder and gcd times and peak RSS, to compare with the `batchgcd` bench
run on the same corpus in the same session (ratios, the machine being shared)."""
import resource
import struct
import sys
import time

import gmpy2


def read_moduli(path, n):
    out = []
    with open(path, "rb") as f:
        (count,) = struct.unpack("<Q", f.read(8))
        for _ in range(min(count, n)):
            (length,) = struct.unpack("<Q", f.read(8))
            out.append(gmpy2.mpz(int.from_bytes(f.read(length), "little")))
    return out


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    xs = read_moduli(path, n)
    t0 = time.perf_counter()
    levels = [xs]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        levels.append([cur[i] * cur[i + 1] if i + 1 < len(cur) else cur[i]
                       for i in range(0, len(cur), 2)])
    t1 = time.perf_counter()
    rems = levels.pop()
    while levels:
        cur = levels.pop()
        rems = [rems[i // 2] % (cur[i] * cur[i]) for i in range(len(cur))]
    t2 = time.perf_counter()
    gs = [gmpy2.gcd(r // x, x) for r, x in zip(rems, xs)]
    t3 = time.perf_counter()
    weak = sum(1 for g in gs if g != 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"gmpy2 plain tree: {len(xs)} moduli, 1 thread: wall {t3 - t0:.2f} s, "
          f"CPU {time.process_time():.2f} s (product {t1 - t0:.2f} s, remainders {t2 - t1:.2f} s, "
          f"gcds {t3 - t2:.2f} s), peak RSS {rss:.0f} MB, weak {weak}")


if __name__ == "__main__":
    main()
