"""Synthetic application logs: a deterministic corpus for demos, tests and benchmarks.

:func:`generate` yields entries ``(labels, ts_ns, line, metadata)`` from a
handful of made-up services (an API, a web front, payments, auth, a job
worker and an edge gateway) in prod and staging.  Each service writes one
kind of line, as such services do:

``logfmt``  ``ts=... level=info msg="request completed" method=GET ... req_id=req-8f3a2c1d``
``json``    ``{"ts":"...","level":"error","msg":"provider timeout","user":{"id":4821},...}``
``nginx``   combined access log plus request time and id (and rare error-log lines)
``syslog``  BSD syslog: ``Jan  1 00:00:00 auth-prod-1 sshd[2314]: Accepted publickey ...``

Levels live in the line, never in the labels (as Loki recommends): streams
are ``app`` x ``env`` (plus a ``namespace`` label naming the team).  The
distributions are shaped like real traffic: mostly info, some warn, rare
error; HTTP status codes weighted towards 200; durations log-normal; user
ids Zipf-like; request ids (``req-`` + 8 hex) unique across the whole corpus
up to 2**32 requests; services marked ``trace_metadata`` attach a
``trace_id`` as structured metadata to request lines.

Everything is drawn from one ``random.Random(seed)``, so a seed always gives
the same corpus (same Python version).  Speed comes from design rather than
tuning: value pools and weighted tables are built once, a line is one ``%``
format of a fixed template, and timestamp text is rebuilt once per second of
log time, not once per line (several hundred thousand lines per second).

:func:`stream_batches` groups the same entries into ``(labels, entries)``
batches, the shape ``Store.push`` takes.  Stdlib only.
"""

# Lines are built by ``%``-formatting templates prepared once (UP031 off):
# the templates are data, and ``%`` with a tuple is the fastest way to fill them.
# ruff: noqa: UP031

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = [
    "DEFAULT_START_NS",
    "LINE_KINDS",
    "SERVICES",
    "Service",
    "generate",
    "stream_batches",
    "streams",
]

#: 2024-01-01T00:00:00Z: a fixed default start, so a seed alone fixes the corpus.
DEFAULT_START_NS = 1_704_067_200_000_000_000
#: Line rate used when only ``duration_ns`` or only ``n_lines`` is given.
DEFAULT_LINES_PER_SECOND_PER_STREAM = 10.0
LINE_KINDS = ("logfmt", "json", "nginx", "syslog")

_NS = 1_000_000_000


@dataclass(frozen=True)
class Service:
    """One synthetic service: an ``app`` label value and the kind of line it writes.

    ``envs`` lists the ``env`` label values it runs in (one stream each);
    ``weight`` is its relative line rate (weights are normalised so the mean
    stream runs at the requested rate); ``trace_metadata`` attaches
    ``{"trace_id": <32 hex>}`` structured metadata to its request lines.
    """

    app: str
    kind: str
    envs: tuple[str, ...] = ("prod", "staging")
    namespace: str = "shop"
    weight: float = 1.0
    trace_metadata: bool = False


SERVICES: tuple[Service, ...] = (
    Service("api", "logfmt", weight=1.5, trace_metadata=True),
    Service("web", "nginx", weight=2.0),
    Service("payments", "json", weight=0.6, trace_metadata=True),
    Service("auth", "syslog", namespace="identity", weight=0.5),
    Service("worker", "logfmt", envs=("prod",), namespace="batch", weight=0.8),
    Service("gateway", "nginx", envs=("prod",), namespace="edge", weight=1.2),
)


def streams(services: Iterable[Service | str] | None = None) -> list[dict[str, str]]:
    """The label sets :func:`generate` writes to, in a fixed order."""
    return [_labels(s, env) for s in _resolve(services) for env in s.envs]


def _labels(service: Service, env: str) -> dict[str, str]:
    return {"app": service.app, "env": env, "namespace": service.namespace}


def _resolve(services: Iterable[Service | str] | None) -> list[Service]:
    if services is None:
        return list(SERVICES)
    by_name = {s.app: s for s in SERVICES}
    out: list[Service] = []
    for s in services:
        if isinstance(s, str):
            if s not in by_name:
                raise ValueError(
                    f"corpus: unknown service {s!r} (known: {', '.join(sorted(by_name))})"
                )
            s = by_name[s]
        if not isinstance(s, Service):
            raise TypeError(f"corpus: services must be Service or str, got {type(s).__name__}")
        if s.kind not in LINE_KINDS:
            raise ValueError(f"corpus: unknown line kind {s.kind!r} (known: {LINE_KINDS})")
        if not s.envs or s.weight <= 0:
            raise ValueError(f"corpus: service {s.app!r} needs envs and a positive weight")
        out.append(s)
    if not out:
        raise ValueError("corpus: services is empty")
    return out


# ---------------------------------------------------------------------------
# weighted tables: a list of 2**bits items drawn with the given weights, so a
# draw is one getrandbits and one index.


def _table(rng: random.Random, weighted: list[tuple[object, float]], bits: int = 10) -> list:
    size = 1 << bits
    total = sum(w for _, w in weighted)
    out: list = []
    acc = 0.0
    for item, w in weighted:
        acc += w
        out.extend([item] * (round(acc / total * size) - len(out)))
    out.extend([weighted[-1][0]] * (size - len(out)))
    rng.shuffle(out)
    return out[:size]


def _lognormal_ints(rng: random.Random, median: float, sigma: float, n: int = 4096,
                    lo: int = 0, hi: int = 10**9) -> list[int]:
    mu = math.log(median)
    return [min(hi, max(lo, int(rng.lognormvariate(mu, sigma)))) for _ in range(n)]


def _zipf_ints(rng: random.Random, first: int, count: int, n: int = 4096,
               s: float = 1.1) -> list[int]:
    ids = list(range(first, first + count))
    rng.shuffle(ids)
    weights = [1.0 / (k + 1) ** s for k in range(count)]
    return rng.choices(ids, weights=weights, k=n)


_STATUS = [
    (200, 70.0), (201, 5.0), (204, 4.0), (301, 1.0), (304, 4.0), (400, 3.0), (401, 2.0),
    (403, 1.0), (404, 5.0), (409, 0.5), (429, 1.0), (500, 1.0), (502, 0.4), (503, 0.4),
    (504, 0.2),
]


def _status_level(status: int) -> str:
    if status >= 500:
        return "error"
    if status in (401, 403, 429):
        return "warn"
    return "info"


_FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
)
_COUNTRIES = [("DE", 20), ("US", 30), ("FR", 10), ("GB", 12), ("NL", 6), ("PL", 5), ("JP", 4),
              ("BR", 4), ("IN", 5), ("CA", 4)]
_USER_AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", 40),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.1 Safari/605.1.15", 20),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", 8),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", 18),
    ("curl/8.4.0", 3),
    ("python-requests/2.31.0", 4),
    ("Go-http-client/1.1", 3),
    ("kube-probe/1.28", 4),
]


def _ip_pool(rng: random.Random, n: int, private: bool) -> list[str]:
    if private:
        return [f"10.{rng.randrange(0, 8)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                for _ in range(n)]
    return [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
            f"{rng.randrange(1, 255)}" for _ in range(n)]


def _paths(rng: random.Random, prefix: str, n: int = 1024) -> list[tuple[str, str]]:
    """Weighted (method, path) pairs with ids baked in: ``n`` concrete requests."""
    shapes = [
        ("GET", prefix + "/products/%d", 20), ("GET", prefix + "/products?page=%d", 8),
        ("GET", prefix + "/users/%d", 10), ("GET", prefix + "/cart", 10),
        ("POST", prefix + "/cart/items", 6), ("DELETE", prefix + "/cart/items/%d", 2),
        ("GET", prefix + "/orders/%d", 8), ("POST", prefix + "/orders", 4),
        ("GET", prefix + "/search?q=%s", 10), ("POST", prefix + "/login", 3),
        ("GET", "/healthz", 6), ("GET", "/metrics", 3), ("GET", "/static/app.%s.js", 5),
    ]
    words = ("shoes", "lamp", "desk", "coffee", "tent", "kettle", "gift", "phone+case")
    out = []
    for method, path, _w in rng.choices(shapes, weights=[s[2] for s in shapes], k=n):
        if "%d" in path:
            path = path % rng.randrange(1, 99999)
        elif "%s" in path:
            path = path % (rng.choice(words) if "search" in path else "%08x" % rng.getrandbits(32))
        out.append((method, path))
    return out


# ---------------------------------------------------------------------------
# the clock: per-second text in every format a line kind needs


class _Clock:
    """Timestamp text for one second of log time, rebuilt only when the second changes."""

    __slots__ = ("sec", "iso", "nginx", "bsd", "nginx_err")

    def __init__(self) -> None:
        self.sec = -1

    def set(self, sec: int) -> None:
        t = time.gmtime(sec)
        self.sec = sec
        self.iso = time.strftime("%Y-%m-%dT%H:%M:%S", t)
        self.nginx = time.strftime("%d/%b/%Y:%H:%M:%S +0000", t)
        self.nginx_err = time.strftime("%Y/%m/%d %H:%M:%S", t)
        self.bsd = time.strftime("%b ", t) + ("%2d" % t.tm_mday) + time.strftime(" %H:%M:%S", t)


# ---------------------------------------------------------------------------
# line builders: one closure per stream, ``build(ts_ns) -> (line, metadata)``


class _Shared:
    """Pools and counters shared by every stream of one corpus."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clock = _Clock()
        self.req_seq = rng.getrandbits(32)
        self.status = _table(rng, _STATUS)
        self.durations_ms = _lognormal_ints(rng, 18, 1.0, lo=1, hi=30_000)
        self.body_bytes = _lognormal_ints(rng, 900, 1.3, lo=0, hi=5_000_000)
        self.users = _zipf_ints(rng, 1000, 50_000)
        self.countries = _table(rng, _COUNTRIES, bits=8)
        self.user_agents = _table(rng, _USER_AGENTS, bits=8)
        self.public_ips = _ip_pool(rng, 4096, private=False)
        self.private_ips = _ip_pool(rng, 256, private=True)

    def next_request_id(self) -> int:
        # A multiplicative bijection of a counter: unique for 2**32 requests,
        # yet it looks random (real request ids are random hex).
        self.req_seq = (self.req_seq + 1) & 0xFFFFFFFF
        return (self.req_seq * 0x9E3779B1) & 0xFFFFFFFF


def _logfmt_api(sh: _Shared, service: Service, env: str):
    rng = sh.rng
    bits = rng.getrandbits
    clock = sh.clock
    status_t, dur_t, bytes_t, users = sh.status, sh.durations_ms, sh.body_bytes, sh.users
    paths = _paths(rng, "/api/v1")
    trace = service.trace_metadata
    req_fmt = {
        st: ("ts=%s.%03dZ level=" + _status_level(st) + ' msg="request completed" method=%s '
             "path=%s status=" + str(st) + " duration=%dms bytes=%d user_id=%d req_id=req-%08x")
        for st, _ in _STATUS
    }
    other = _table(rng, [
        ('level=debug msg="cache miss" key=product:%d ttl=300s', 30),
        ('level=info msg="feature flag evaluated" flag=new_checkout user_id=%d', 10),
        ('level=warn msg="slow query" table=orders rows=%d duration=%dms', 8),
        ('level=warn msg="retrying upstream call" upstream=inventory attempt=%d', 4),
        ('level=error msg="database connection reset" db=orders-%d err="connection reset by peer"',
         1),
        ('level=info msg="config reloaded" version=%d', 1),
    ], bits=8)
    other_nargs = {f: f.count("%d") for f in set(other)}
    request_share = 0.85 if env == "prod" else 0.7

    def build(ts: int):
        sec, ns = divmod(ts, _NS)
        if sec != clock.sec:
            clock.set(sec)
        if rng.random() < request_share:
            method, path = paths[bits(10)]
            r = bits(36)
            line = req_fmt[status_t[r & 1023]] % (
                clock.iso, ns // 1_000_000, method, path, dur_t[(r >> 10) & 4095],
                bytes_t[(r >> 22) & 4095], users[bits(12)], sh.next_request_id())
            if trace:
                return line, {"trace_id": "%032x" % bits(128)}
            return line, None
        f = other[bits(8)]
        n = other_nargs[f]
        args = (bits(14),) if n == 1 else (bits(14), dur_t[bits(12)] * 20)
        return ("ts=%s.%03dZ " % (clock.iso, ns // 1_000_000)) + f % args, None

    return build


def _logfmt_worker(sh: _Shared, service: Service, env: str):
    rng = sh.rng
    bits = rng.getrandbits
    clock = sh.clock
    dur_t = sh.durations_ms
    jobs = _table(rng, [("send_email", 30), ("resize_image", 15), ("sync_inventory", 10),
                        ("generate_invoice", 8), ("reindex_search", 2), ("expire_carts", 5)])
    queues = {"send_email": "mail", "resize_image": "media", "sync_inventory": "default",
              "generate_invoice": "billing", "reindex_search": "default",
              "expire_carts": "default"}
    events = _table(rng, [
        (("info", "job started"), 40), (("info", "job finished"), 40),
        (("warn", "job retrying"), 4), (("error", "job failed"), 1), (("debug", "heartbeat"), 8),
    ])
    fmt = {
        ev: "ts=%s.%03dZ level=" + ev[0] + ' msg="' + ev[1] + '" job=%s queue=%s job_id=j-%07d'
        + (" attempt=%d duration=%dms" if ev[1] != "job started" else " attempt=%d%s")
        for ev in set(events)
    }

    def build(ts: int):
        sec, ns = divmod(ts, _NS)
        if sec != clock.sec:
            clock.set(sec)
        ev = events[bits(10)]
        job = jobs[bits(10)]
        r = bits(24)
        if ev[1] == "job failed":
            extra = ' err="timeout after 30s"'
        else:
            extra = ""
        tail = "" if ev[1] == "job started" else dur_t[r & 4095] * 7
        return fmt[ev] % (clock.iso, ns // 1_000_000, job, queues[job], r >> 4,
                          1 + (r & 3 if ev[0] != "info" else 0), tail) + extra, None

    return build


def _json_payments(sh: _Shared, service: Service, env: str):
    rng = sh.rng
    bits = rng.getrandbits
    clock = sh.clock
    dur_t, users, countries = sh.durations_ms, sh.users, sh.countries
    amounts = _lognormal_ints(rng, 2500, 1.0, lo=99, hi=500_000)
    trace = service.trace_metadata
    head = '{"ts":"%s.%03dZ","level":"'
    events = _table(rng, [
        ('info","msg":"charge succeeded","provider":"stripe', 50),
        ('info","msg":"charge succeeded","provider":"adyen', 20),
        ('info","msg":"refund issued","provider":"stripe', 5),
        ('warn","msg":"charge declined","reason":"card_declined","provider":"stripe', 6),
        ('warn","msg":"charge declined","reason":"insufficient_funds","provider":"adyen', 3),
        ('error","msg":"provider timeout","error":"context deadline exceeded",'
         '"provider":"adyen', 1),
        ('debug","msg":"webhook received","event":"payment_intent.succeeded","provider":"stripe',
         8),
    ])
    fmt = {
        ev: head + ev + '","req_id":"req-%08x","user":{"id":%d,"country":"%s"},'
        '"amount_cents":%d,"currency":"%s","latency_ms":%d}'
        for ev in set(events)
    }
    currency = {"DE": "EUR", "FR": "EUR", "NL": "EUR", "US": "USD", "GB": "GBP", "PL": "PLN",
                "JP": "JPY", "BR": "BRL", "IN": "INR", "CA": "CAD"}

    def build(ts: int):
        sec, ns = divmod(ts, _NS)
        if sec != clock.sec:
            clock.set(sec)
        r = bits(42)
        ev = events[r & 1023]
        c = countries[(r >> 10) & 255]
        line = fmt[ev] % (clock.iso, ns // 1_000_000, sh.next_request_id(), users[(r >> 18) & 4095],
                          c, amounts[(r >> 30) & 4095], currency[c], dur_t[bits(12)] * 4)
        if trace:
            return line, {"trace_id": "%032x" % bits(128)}
        return line, None

    return build


def _nginx(sh: _Shared, service: Service, env: str):
    rng = sh.rng
    bits = rng.getrandbits
    clock = sh.clock
    status_t, dur_t, bytes_t = sh.status, sh.durations_ms, sh.body_bytes
    ips, uas = sh.public_ips, sh.user_agents
    paths = _paths(rng, "/api/v1" if service.app == "gateway" else "/shop")
    referers = _table(rng, [("-", 60), ("https://shop.example.com/", 25),
                            ("https://www.google.com/", 10), ("https://shop.example.com/cart", 5)],
                      bits=6)
    upstreams = sh.private_ips[:8]
    fmt = '%s - - [%s] "%s %s HTTP/1.1" %d %d "%s" "%s" %d.%03d req-%08x'
    err_fmt = ('%s [error] 7#7: *%d upstream timed out (110: Connection timed out) while reading '
               'response header from upstream, client: %s, server: shop.example.com, '
               'request: "%s %s HTTP/1.1", upstream: "http://%s:8080%s", host: "shop.example.com"')

    def build(ts: int):
        sec = ts // _NS
        if sec != clock.sec:
            clock.set(sec)
        r = bits(50)
        method, path = paths[r & 1023]
        if (r >> 10) & 511 == 0:  # about 1 in 500 lines comes from the error log
            return err_fmt % (clock.nginx_err, r >> 20, ips[bits(12)], method, path,
                              upstreams[r & 7], path), None
        d = dur_t[(r >> 19) & 4095]
        return fmt % (ips[(r >> 31) & 4095], clock.nginx, method, path, status_t[(r >> 10) & 1023],
                      bytes_t[bits(12)], referers[(r >> 43) & 63], uas[bits(8)], d // 1000,
                      d % 1000, sh.next_request_id()), None

    return build


def _syslog_auth(sh: _Shared, service: Service, env: str):
    rng = sh.rng
    bits = rng.getrandbits
    clock = sh.clock
    hosts = [f"{service.app}-{env}-{i}" for i in range(1, 4)]
    pids = [(h, rng.randrange(300, 32000), rng.randrange(300, 32000)) for h in hosts]
    ips, users = sh.private_ips, sh.users
    events = _table(rng, [
        ("sshd[%d]: Accepted publickey for deploy from %s port %d ssh2: ED25519 "
         "SHA256:Xq3xk2v9bq0fJZqk4Wm1p8a3t5yQ0cLrU2nHf7dKj6s", 10),
        ("sshd[%d]: pam_unix(sshd:session): session closed for user deploy from %s port %d", 8),
        ("sshd[%d]: Failed password for invalid user admin from %s port %d ssh2", 3),
        ("sshd[%d]: Connection closed by authenticating user root %s port %d [preauth]", 2),
        ("authd[%d]: info: login succeeded user_id=%d method=password src=%s req_id=req-%08x", 40),
        ("authd[%d]: info: token refreshed user_id=%d ttl=3600 src=%s req_id=req-%08x", 30),
        ("authd[%d]: warning: login failed user_id=%d reason=bad_password src=%s "
         "req_id=req-%08x", 5),
        ("authd[%d]: error: ldap bind failed user_id=%d err=\"i/o timeout\" src=%s "
         "req_id=req-%08x", 1),
    ])

    def build(ts: int):
        sec = ts // _NS
        if sec != clock.sec:
            clock.set(sec)
        r = bits(24)
        host, sshd_pid, authd_pid = pids[r % 3]
        f = events[(r >> 2) & 1023]
        if f[0] == "s":
            body = f % (sshd_pid + (r >> 12 & 63), ips[bits(8)], 30000 + bits(15))
        else:
            body = f % (authd_pid, users[bits(12)], ips[bits(8)], sh.next_request_id())
        return "%s %s %s" % (clock.bsd, host, body), None

    return build


_BUILDERS = {"logfmt": _logfmt_api, "json": _json_payments, "nginx": _nginx,
             "syslog": _syslog_auth}


def _builder(sh: _Shared, service: Service, env: str):
    if service.kind == "logfmt" and service.app == "worker":
        return _logfmt_worker(sh, service, env)
    return _BUILDERS[service.kind](sh, service, env)


# ---------------------------------------------------------------------------


def generate(
    *,
    seed: int = 0,
    start_ns: int = DEFAULT_START_NS,
    duration_ns: int | None = None,
    lines_per_second_per_stream: float | None = None,
    n_lines: int | None = None,
    services: Iterable[Service | str] | None = None,
) -> Iterator[tuple[dict[str, str], int, str, dict[str, str] | None]]:
    """Yield ``(labels, ts_ns, line, metadata)`` entries, time-ordered across all streams.

    Give two of ``duration_ns``, ``lines_per_second_per_stream`` and
    ``n_lines`` (total lines over all streams), or one of them and the rate
    defaults to ``DEFAULT_LINES_PER_SECOND_PER_STREAM``.  When ``n_lines`` is
    known exactly that many entries are produced; otherwise ``rate x streams x
    duration`` (rounded).  Timestamps lie in ``[start_ns, start_ns +
    duration_ns)`` and never decrease (a stream is therefore time-ordered);
    they are jittered around an even spacing.  ``services`` selects services
    by :class:`Service` or by app name (default :data:`SERVICES`).

    The ``labels`` dict yielded is shared by every entry of its stream: do not
    mutate it.  ``metadata`` is ``None`` or a fresh dict.  Raises
    ``ValueError`` for negative or missing sizes and unknown services.
    """
    svc = _resolve(services)
    pairs = [(s, env) for s in svc for env in s.envs]
    n_streams = len(pairs)
    rate = lines_per_second_per_stream
    if rate is not None and rate <= 0:
        raise ValueError(f"corpus: lines_per_second_per_stream must be positive, got {rate}")
    if duration_ns is not None and duration_ns <= 0:
        raise ValueError(f"corpus: duration_ns must be positive, got {duration_ns}")
    if n_lines is not None and n_lines < 0:
        raise ValueError(f"corpus: n_lines must be >= 0, got {n_lines}")
    if duration_ns is None and n_lines is None:
        raise ValueError("corpus: give duration_ns or n_lines")
    if duration_ns is not None and n_lines is not None and rate is not None:
        raise ValueError("corpus: give at most two of duration_ns, lines_per_second_per_stream, "
                         "n_lines")
    if rate is None:
        rate = DEFAULT_LINES_PER_SECOND_PER_STREAM
    if n_lines is None:
        n_lines = round(rate * n_streams * duration_ns / _NS)
    if duration_ns is None:
        duration_ns = max(1, round(n_lines / (rate * n_streams) * _NS))
    if n_lines == 0:
        return

    rng = random.Random(seed)
    shared = _Shared(rng)
    weight_sum = sum(s.weight for s, _ in pairs)
    stream_table = _table(rng, [(i, s.weight / weight_sum) for i, (s, _) in enumerate(pairs)],
                          bits=12)
    labels = [_labels(s, env) for s, env in pairs]
    builders = [_builder(shared, s, env) for s, env in pairs]
    step = duration_ns / n_lines
    rand = rng.random
    bits = rng.getrandbits
    for i in range(n_lines):
        ts = start_ns + int((i + rand()) * step)
        k = stream_table[bits(12)]
        line, meta = builders[k](ts)
        yield labels[k], ts, line, meta


def stream_batches(
    *, batch_size: int = 1000, **generate_kwargs
) -> Iterator[tuple[dict[str, str], list[tuple]]]:
    """Group :func:`generate`'s entries into ``(labels, entries)`` batches for ``Store.push``.

    Each stream's entries are buffered until ``batch_size`` of them are
    pending, then yielded as one batch; what remains is yielded at the end.
    Entries are ``(ts_ns, line)``, or ``(ts_ns, line, metadata)`` when the
    entry has metadata.  Within a stream the batches (and the entries in them)
    are in time order; across streams a batch may be older than one yielded
    before it, as with any collector.  Raises ``ValueError`` for
    ``batch_size < 1``; other arguments go to :func:`generate`.
    """
    if batch_size < 1:
        raise ValueError(f"corpus: batch_size must be >= 1, got {batch_size}")
    pending: dict[int, tuple[dict[str, str], list[tuple]]] = {}
    for labels, ts, line, meta in generate(**generate_kwargs):
        key = id(labels)
        slot = pending.get(key)
        if slot is None:
            slot = pending[key] = (labels, [])
        entries = slot[1]
        entries.append((ts, line) if meta is None else (ts, line, meta))
        if len(entries) >= batch_size:
            yield slot
            pending[key] = (labels, [])
    for labels, entries in pending.values():
        if entries:
            yield labels, entries
