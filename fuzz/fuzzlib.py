"""What the fuzz targets share: the corpus, the mutations, and the two drivers.

A target module (``fuzz/fuzz_*.py``) defines

``NAME``
    its corpus folder, ``fuzz/corpus/NAME/`` (valid files, from ``make_corpus.py``);
``check(data) -> bool``
    feed one input to the reader; ``True`` when the reader accepted it,
    ``False`` when it refused it with a documented error (the target catches
    those itself).  Any other exception escaping ``check`` is a finding, and
    so is a :class:`Finding` the target raises when an oracle fails (the two
    backends disagree, a round trip changes the data, a repair is not
    idempotent);
``fixup(data) -> bytes`` (optional)
    recompute the checksums of a mutated file, so that mutations reach the
    parsing behind the CRCs instead of stopping at the first checksum;
``TOKENS`` (optional)
    strings a mutation may insert (the LogQL grammar's keywords and operators),

and ends with ``if __name__ == "__main__": fuzzlib.main(NAME)``.

Two drivers run a target:

- **atheris** (coverage-guided libFuzzer, ``pip install atheris``): the
  default when atheris imports; ``fuzz/work/NAME/`` receives new inputs, the
  committed corpus only seeds it; a custom mutator applies ``fixup`` to half
  of libFuzzer's mutations;
- **Hypothesis** (``--hypothesis``): batches of examples drawn by
  :func:`inputs` (a corpus file, or random bytes, put through up to eight
  structured mutations, then possibly ``fixup``) until ``--seconds`` run out.
  A finding is shrunk by Hypothesis, saved to ``fuzz/findings/NAME/`` with
  its traceback, and the run goes on looking for different ones.  The quick
  CI mode (``tests/test_fuzz_quick.py``) is this driver with a few hundred
  examples.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import logging
import os
import random
import signal
import sys
import tempfile
import time
import traceback

FUZZ_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(FUZZ_DIR)
CORPUS_DIR = os.path.join(FUZZ_DIR, "corpus")
FINDINGS_DIR = os.path.join(FUZZ_DIR, "findings")
TARGETS = ("chunk_reader", "wal_reader", "index_reader", "logql_parser")

try:  # an installed chunkstore (or PYTHONPATH, e.g. the ASan build) wins over the tree
    import chunkstore  # noqa: F401
except ImportError:
    sys.path.append(REPO)


class Finding(AssertionError):
    """An oracle of a fuzz target failed (not an exception of the reader itself)."""


def scratch_dir(prefix: str) -> str:
    """A private temporary directory, on tmpfs when there is one (fsync costs nothing)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix=f"chunkstore-fuzz-{prefix}-", dir=base)


def load_target(name: str):
    """The target module ``fuzz_<name>`` (importable from tests too)."""
    if FUZZ_DIR not in sys.path:
        sys.path.insert(0, FUZZ_DIR)
    return importlib.import_module(f"fuzz_{name}")


def load_corpus(name: str, *, work: bool = False) -> list[bytes]:
    """The seed files of a target, sorted by file name ([] when none).

    ``work`` adds the inputs atheris found new coverage with (``fuzz/work/NAME/``),
    so a Hypothesis run (e.g. under ASan, where atheris gets no coverage) starts
    from what a coverage-guided run reached.
    """
    dirs = [os.path.join(CORPUS_DIR, name)]
    if work:
        dirs.append(os.path.join(FUZZ_DIR, "work", name))
    out = []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                out.append(f.read())
    return out


# ---------------------------------------------------------------------------
# mutations

_INTERESTING_U32 = (0, 1, 2, 7, 8, 13, 16, 20, 41, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000,
                    1 << 20, (1 << 26) + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
_INTERESTING_U64 = (0, 1, 1 << 31, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)
_MUTATIONS = ("flip", "byte", "u32", "u64", "varint", "insert", "delete", "duplicate",
              "truncate", "splice", "token")


def _mutate(draw, data: bytearray, corpus: list[bytes], tokens: tuple[bytes, ...]) -> None:
    from hypothesis import strategies as st

    op = draw(st.sampled_from(_MUTATIONS))
    n = len(data)
    pos = draw(st.integers(0, n))
    if op == "flip" and n:
        pos = min(pos, n - 1)
        data[pos] ^= 1 << draw(st.integers(0, 7))
    elif op == "byte" and n:
        data[min(pos, n - 1)] = draw(st.sampled_from((0, 1, 0x7F, 0x80, 0xFE, 0xFF))
                                     | st.integers(0, 255))
    elif op in ("u32", "u64"):
        width = 4 if op == "u32" else 8
        pool = _INTERESTING_U32 if width == 4 else _INTERESTING_U64
        value = draw(st.sampled_from(pool) | st.integers(0, (1 << (8 * width)) - 1)
                     | st.just(n % (1 << (8 * width))))
        data[pos:pos + width] = value.to_bytes(width, "little")
    elif op == "varint":  # a long or overflowing LEB128 varint
        data[pos:pos] = draw(st.sampled_from((b"\x80" * 9 + b"\x01", b"\xff" * 9 + b"\x02",
                                              b"\xff" * 11, b"\x80\x00", b"\xff\xff\xff\x7f")))
    elif op == "insert":
        data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    elif op == "delete" and n:
        data[pos:pos + draw(st.integers(1, 32))] = b""
    elif op == "duplicate" and n:
        start = draw(st.integers(0, n - 1))
        piece = data[start:start + draw(st.integers(1, 64))]
        data[pos:pos] = piece
    elif op == "truncate":
        del data[pos:]
    elif op == "splice" and corpus:
        other = draw(st.sampled_from(corpus))
        if other:
            start = draw(st.integers(0, len(other) - 1))
            piece = other[start:start + draw(st.integers(1, 256))]
            data[pos:pos + draw(st.integers(0, 64))] = piece
    elif op == "token" and tokens:
        data[pos:pos] = draw(st.sampled_from(tokens))


def inputs(target, corpus: list[bytes] | None = None):
    """Hypothesis strategy of inputs for ``target``: mutated seeds and random bytes.

    Shrinks towards an unmutated corpus file (the first one) without fixups.
    """
    from hypothesis import strategies as st

    corpus = load_corpus(target.NAME) if corpus is None else corpus
    tokens = tuple(t.encode() if isinstance(t, str) else t for t in getattr(target, "TOKENS", ()))
    fixup = getattr(target, "fixup", None)
    extra = target.extra_seeds() if hasattr(target, "extra_seeds") else None

    @st.composite
    def strategy(draw):
        if corpus and draw(st.integers(0, 9)) > 0:
            data = bytearray(draw(st.sampled_from(corpus)))
        elif extra is not None and draw(st.booleans()):
            data = bytearray(draw(extra))
        else:
            data = bytearray(draw(st.binary(max_size=512)))
        for _ in range(draw(st.integers(0, 8))):
            _mutate(draw, data, corpus, tokens)
        out = bytes(data)
        if fixup is not None and draw(st.booleans()):
            out = fixup(out)
        return out

    return strategy()


# ---------------------------------------------------------------------------
# the Hypothesis driver


class Stats:
    """Counts of one run."""

    def __init__(self) -> None:
        self.execs = 0
        self.accepted = 0
        self.findings: dict[str, tuple[bytes, str]] = {}
        self.start = time.monotonic()

    def line(self, name: str) -> str:
        secs = time.monotonic() - self.start
        rate = self.execs / secs if secs else 0.0
        return (f"{name}: {self.execs} execs in {secs:.0f} s ({rate:.0f}/s), "
                f"{self.accepted} accepted, {self.execs - self.accepted} refused with the "
                f"documented error, {len(self.findings)} finding(s)")


class Hang(Exception):
    """One input ran longer than the per-input time limit."""


def _signature(exc: BaseException) -> str:
    """Exception type and the innermost frame inside chunkstore (or the target)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for fr in reversed(frames):
        if "chunkstore" in fr.filename or "fuzz" in fr.filename:
            where = f"{os.path.basename(fr.filename)}:{fr.lineno}"
            break
    return f"{type(exc).__name__} at {where}"


def save_finding(name: str, data: bytes, exc: BaseException) -> str:
    d = os.path.join(FINDINGS_DIR, name)
    os.makedirs(d, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:16]
    path = os.path.join(d, f"finding-{digest}")
    with open(path + ".bin", "wb") as f:
        f.write(data)
    with open(path + ".txt", "w") as f:
        f.write("".join(traceback.format_exception(exc)))
    return path


def run_hypothesis(name: str, seconds: float, *, seed: int | None = None, batch: int = 500,
                   hang_seconds: float = 10.0, verbose: bool = True) -> Stats:
    """Fuzz ``name`` with Hypothesis for ``seconds``; findings are saved, not raised."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    target = load_target(name)
    strategy = inputs(target, load_corpus(name, work=True))
    stats = Stats()
    if verbose:
        from chunkstore import _kernels

        print(f"{name}: kernels {_kernels.block.__file__} (ACCELERATED={_kernels.ACCELERATED}); "
              f"{len(load_corpus(name, work=True))} seeds", flush=True)
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    last: list = [None]

    def alarm(_sig, _frame):
        raise Hang(f"one input ran longer than {hang_seconds} s")

    use_alarm = hang_seconds > 0 and hasattr(signal, "SIGALRM")
    if use_alarm:
        signal.signal(signal.SIGALRM, alarm)

    def one(data: bytes) -> None:
        stats.execs += 1
        last[0] = data
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, hang_seconds)
        try:
            stats.accepted += bool(target.check(data))
        except Exception as exc:
            if _signature(exc) in stats.findings:
                return  # known: let the run look for new ones
            raise
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)

    last_report = time.monotonic()
    while time.monotonic() < deadline:
        batch_seed = rng.getrandbits(64)
        test = settings(max_examples=batch, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(given(strategy)(one))
        test = hseed(batch_seed)(test)
        try:
            test()
        except Exception as exc:  # Hypothesis re-raises the shrunk example's error
            sig = _signature(exc)
            data = last[0] if last[0] is not None else b""
            path = save_finding(name, data, exc)
            stats.findings[sig] = (data, path)
            if verbose:
                print(f"{name}: FINDING {sig} (seed {batch_seed}): {exc!r}\n  saved to {path}",
                      flush=True)
        if verbose and time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            print(stats.line(name), flush=True)
    if verbose:
        print(stats.line(name), flush=True)
    return stats


# ---------------------------------------------------------------------------
# the atheris driver


def run_atheris(name: str, seconds: float, libfuzzer_args: list[str]) -> None:
    import atheris

    target = load_target(name)
    fixup = getattr(target, "fixup", None)
    work = os.path.join(FUZZ_DIR, "work", name)
    os.makedirs(work, exist_ok=True)
    atheris.instrument_all()

    def test_one(data: bytes) -> None:
        target.check(bytes(data))

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        out = atheris.Mutate(data, max_size)
        if fixup is not None and seed & 1:
            out = fixup(out)[:max_size]
        return out

    found = os.path.join(FINDINGS_DIR, name)
    os.makedirs(found, exist_ok=True)
    args = [sys.argv[0], f"-max_total_time={int(seconds)}", "-timeout=10", "-rss_limit_mb=4096",
            "-print_final_stats=1", f"-artifact_prefix={found}{os.sep}", *libfuzzer_args,
            work, os.path.join(CORPUS_DIR, name)]
    dict_path = os.path.join(FUZZ_DIR, f"{name}.dict")
    if os.path.exists(dict_path):
        args.insert(1, f"-dict={dict_path}")
    atheris.Setup(args, test_one, custom_mutator=mutator)
    atheris.Fuzz()


def replay(name: str, paths: list[str]) -> int:
    """Run each input once; print the failing ones; return 1 when any fails."""
    target = load_target(name)
    files = []
    for p in paths:
        files += [os.path.join(p, n) for n in sorted(os.listdir(p))] if os.path.isdir(p) else [p]
    accepted = failed = 0
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        try:
            accepted += bool(target.check(data))
        except Exception as exc:
            failed += 1
            print(f"{path}: {_signature(exc)}: {exc!r}"[:500], flush=True)
    print(f"{name}: replayed {len(files)} inputs, {accepted} accepted, {failed} failed")
    return 1 if failed else 0


def main(name: str) -> None:
    # Damage is what the fuzzers feed the readers: their warnings are only noise.
    # (Here, not at import: the quick tests share a process with caplog tests.)
    logging.getLogger("chunkstore").setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser(
        description=f"Fuzz the {name.replace('_', ' ')} (atheris by default, else Hypothesis).")
    ap.add_argument("--hypothesis", action="store_true",
                    help="Hypothesis-driven fuzzing instead of atheris")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the Hypothesis driver")
    ap.add_argument("--hang-seconds", type=float, default=10.0,
                    help="an input running longer is a finding (Hypothesis driver; 0 = off)")
    ap.add_argument("--replay", nargs="*", metavar="PATH",
                    help="run the given inputs (files, or directories of them) once each, "
                         "report the ones that fail, and exit")
    args, rest = ap.parse_known_args()
    if args.replay is not None:
        sys.exit(replay(name, args.replay))
    use_atheris = not args.hypothesis
    if use_atheris:
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("atheris is not installed: using the Hypothesis driver", file=sys.stderr)
            use_atheris = False
    if use_atheris:
        run_atheris(name, args.seconds, rest)
    else:
        stats = run_hypothesis(name, args.seconds, seed=args.seed, hang_seconds=args.hang_seconds)
        sys.exit(1 if stats.findings else 0)

