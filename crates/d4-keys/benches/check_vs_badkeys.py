#!/usr/bin/env python3
"""`d4 keys check` against badkeys on the same certificates, same run (not part of the build).

    python3 check_vs_badkeys.py D4_EXE CORPUS_BIN N WORKDIR

Needs `badkeys` (PyPI, 0.0.21 measured) and `cryptography` (a badkeys dependency) in the
Python running it. Takes the first N moduli of the batch GCD bench's cached corpus
(`<target>/keys-bench/corpus-rsa1024.bin`, real RSA moduli: products of two random primes),
replaces every 100th by a Fermat-weak modulus (two 512-bit primes a few thousand apart, so
both tools must report `fermat` on exactly those), wraps each public key (e = 65537) in an
X.509 certificate signed by one throw-away CA key, and writes them base64 one per line to
WORKDIR/certs-N.b64 (kept for the next run). Then runs,
each on that one file and with every default check but `blocklist` (badkeys refuses to run
it without its downloaded blocklist; badkeys' own `primes*.dat` for `sharedprimes` are given to
d4 with `--bad-primes`):

    badkeys -c CHECKS --crt-lines certs-N.b64
    d4 keys check -c CHECKS --crt-lines certs-N.b64 --bad-primes <badkeys>/keydata [--threads 1]

and prints wall time, CPU time, keys/s and the ratios, plus the number of findings each reported
(they must agree)."""
import base64
import datetime
import os
import resource
import struct
import subprocess
import sys
import time


def read_moduli(path, n):
    out = []
    with open(path, "rb") as f:
        (count,) = struct.unpack("<Q", f.read(8))
        if count < n:
            sys.exit(f"{path} holds {count} moduli, {n} wanted: run the batchgcd bench first")
        for _ in range(n):
            (length,) = struct.unpack("<Q", f.read(8))
            out.append(int.from_bytes(f.read(length), "little"))
    return out


def fermat_weak(i):
    import gmpy2

    rs = gmpy2.random_state(i)
    p = gmpy2.next_prime(gmpy2.mpz_urandomb(rs, 511) | (gmpy2.mpz(3) << 510))
    q = gmpy2.next_prime(p + 2 * gmpy2.mpz_urandomb(rs, 12) + 2)
    return int(p * q)


def make_certs(moduli, path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    ca = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d4 keys bench CA")])
    start = datetime.datetime(2026, 1, 1)
    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        for i, n in enumerate(moduli):
            if i % 100 == 7:
                n = fermat_weak(i)
            key = rsa.RSAPublicNumbers(65537, n).public_key()
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"host{i}.example")])
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(issuer)
                .public_key(key)
                .serial_number(i + 1)
                .not_valid_before(start)
                .not_valid_after(start + datetime.timedelta(days=365))
                .sign(ca, hashes.SHA256())
            )
            der = cert.public_bytes(serialization.Encoding.DER)
            out.write(base64.b64encode(der).decode() + "\n")
    os.replace(tmp, path)


CHECKS = "fermat,roca,rsainvalid,rsapoly,sharedprimes,smalld,smallfactors,dsasparse"


def timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 4):
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    findings = sum(1 for line in proc.stdout.splitlines() if " vulnerability, " in line)
    return wall, cpu, findings


def main():
    exe, corpus, n, workdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    os.makedirs(workdir, exist_ok=True)
    certs = os.path.join(workdir, f"certs-{n}-fermat100.b64")
    if not os.path.exists(certs):
        t = time.perf_counter()
        make_certs(read_moduli(corpus, n), certs)
        print(f"made {n} certificates in {time.perf_counter() - t:.1f} s: {certs}")
    import badkeys

    primes = os.path.join(os.path.dirname(badkeys.__file__), "keydata")
    rows = []
    badkeys_exe = os.path.join(os.path.dirname(sys.executable), "badkeys")
    d4 = [exe, "keys", "check", "-c", CHECKS, "--crt-lines", certs, "--bad-primes", primes]
    for name, cmd in [
        ("badkeys", [badkeys_exe, "-c", CHECKS, "--crt-lines", certs]),
        ("d4 keys check", d4),
        ("d4 keys check --threads 1", d4 + ["--threads", "1"]),
    ]:
        wall, cpu, findings = timed(cmd)
        rows.append((name, wall, cpu, findings))
        print(f"{name}: {n} certificates: wall {wall:.2f} s, CPU {cpu:.2f} s, "
              f"{n / wall:,.0f} keys/s, {findings} findings")
    planted = len(range(7, n, 100))
    print(f"planted Fermat-weak keys: {planted}")
    (_, bw, bc, bf) = rows[0]
    for name, dw, dc, df in rows[1:]:
        print(f"ratio {name} / badkeys: {bw / dw:.1f}x keys/s (wall), {bc / dc:.1f}x per CPU "
              f"second; findings {'agree' if bf == df else f'DIFFER ({bf} vs {df})'}")


if __name__ == "__main__":
    main()
