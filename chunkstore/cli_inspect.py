"""``chunkstore inspect``, ``verify``, ``compact``, ``retention`` and ``delete``.

``inspect`` shows structure (of one segment file, or of a store's streams and
chunks) without changing anything; ``verify`` checks every checksum;
the maintenance commands call the store methods of the same names and print
their reports field by field, so they keep working as the reports grow.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from datetime import datetime, timezone

import chunkstore
from chunkstore import cli_render as r
from chunkstore.cli import CLIError, open_store, store_exists

__all__ = ["cmd_inspect", "cmd_verify", "cmd_compact", "cmd_retention", "cmd_delete",
           "print_report"]


def _ratio(raw: int, stored: int) -> str:
    return f"{raw / stored:.2f}x" if stored else "-"


def _tod(ts: int) -> str:
    """Time of day with milliseconds (blocks of one segment share a day)."""
    try:
        dt = datetime.fromtimestamp(ts // 1_000_000_000, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return str(ts)
    return dt.strftime("%H:%M:%S") + f".{ts % 1_000_000_000 // 1_000_000:03d}"


# ---------------------------------------------------------------------------
# inspect

def cmd_inspect(args, out, err) -> int:
    path = args.path
    if os.path.isdir(path):
        return _inspect_store(args, out)
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file or store directory", 2)
    return _inspect_segment(args, out)


def _inspect_segment(args, out) -> int:
    from chunkstore.chunkfile import describe_segment

    d = describe_segment(args.path)
    if args.output == "jsonl":
        out.write(json.dumps(d) + "\n")
        return 1 if d["errors"] else 0
    color = r.use_color(args.color, out)
    pal = r.Palette(color)
    t = d["totals"]
    out.write(pal(f"segment {d['path']}", "bold") + f"  {r.format_bytes(d['size'])}\n")
    out.write(f"{r.format_count(t['chunks'])} chunks, {r.format_count(t['blocks'])} blocks, "
              f"{r.format_count(t['entries'])} entries; {r.format_bytes(t['raw_bytes'])} raw "
              f"({r.format_bytes(t['text_bytes'])} of line text) -> "
              f"{r.format_bytes(t['stored_bytes'])} stored, ratio "
              f"{_ratio(t['raw_bytes'], t['stored_bytes'])}\n")
    if d["errors"]:
        out.write(pal(f"checksums: {len(d['errors'])} FAILED", "bold_red") + "\n")
    else:
        out.write("checksums: all ok\n")
    for c in d["chunks"]:
        out.write("\n" + pal(f"chunk @{c['offset']}", "bold") + f" ({r.format_bytes(c['length'])})"
                  f"  {pal(c['labels'], 'cyan')}  fingerprint {c['fingerprint']}\n")
        out.write(f"  {r.format_count(c['entries'])} entries, {r.format_ns(c['min_ts'])} .. "
                  f"{r.format_ns(c['max_ts'])}, {r.format_bytes(c['raw_bytes'])} raw -> "
                  f"{r.format_bytes(c['stored_bytes'])} stored, ratio "
                  f"{_ratio(c['raw_bytes'], c['stored_bytes'])}, {len(c['blocks'])} blocks\n")
        if args.no_blocks:
            continue
        rows = []
        for i, b in enumerate(c["blocks"]):
            ok = "ok" if b["checksum_ok"] else "FAILED"
            rows.append([i, b["offset"], b["codec"], r.format_count(b["entries"]),
                         _tod(b["min_ts"]), _tod(b["max_ts"]), r.format_count(b["raw_bytes"]),
                         r.format_count(b["stored_bytes"]),
                         _ratio(b["raw_bytes"], b["stored_bytes"]),
                         ok])
        _indent_table(["BLOCK", "OFFSET", "CODEC", "ENTRIES", "FROM", "TO", "RAW", "STORED",
                       "RATIO", "CRC"], rows, out, "rrlrllrrrl")
    if d["errors"]:
        out.write("\n" + pal("problems:", "bold_red") + "\n")
        for e in d["errors"]:
            out.write(f"  offset {e['offset']}: {e['message']}\n")
        return 1
    return 0


def _indent_table(headers, rows, out, align: str) -> None:
    """A plain table indented under its heading (rich's boxes would not nest)."""
    buf = io.StringIO()
    r.print_table(headers, rows, buf, align=align)
    for line in buf.getvalue().splitlines():
        out.write("  " + line + "\n")


def _dir_size(path: str, suffix: str) -> tuple[int, int]:
    n = size = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            if f.endswith(suffix):
                n += 1
                try:
                    size += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
    return n, size


def _segment_chunks(root: str, segments) -> dict[tuple[str, int], dict]:
    """``(segment, offset) -> chunk`` of :func:`describe_segment` for each named segment.

    Reads every block to check its crc (as ``inspect FILE`` does).  A chunk
    that cannot be read (a damaged header stops the walk of its file) is
    absent from the map; its caller reports it as damaged.
    """
    from chunkstore.chunkfile import describe_segment
    from chunkstore.errors import CorruptionError

    found: dict[tuple[str, int], dict] = {}
    for seg in sorted(segments):
        try:
            d = describe_segment(os.path.join(root, seg))
        except (CorruptionError, OSError):
            continue
        for c in d["chunks"]:
            found[(seg, c["offset"])] = c
    return found


def _chunk_structure(ref, found: dict) -> dict:
    """Blocks, codecs and checksum status of one indexed chunk."""
    c = found.get((ref.segment, ref.offset))
    if c is None:
        return {"blocks": 0, "codecs": [], "checksum_ok": False}
    return {"blocks": len(c["blocks"]),
            "codecs": sorted({b["codec"] for b in c["blocks"]}),
            "checksum_ok": all(b["checksum_ok"] for b in c["blocks"])}


def _inspect_store(args, out) -> int:
    path = args.path
    store = open_store(path)
    try:
        streams = []
        with store._lock:  # the chunks are read from the index's columns under the lock
            items = [(sid, entry, entry.chunks) for sid, entry in store.index.streams.items()]
            heads = dict(store.heads)
        for sid, entry, chunks in items:
            head = heads.get(sid)
            head_n = head.n_entries() if head is not None and not head.empty else 0
            head_bytes = (head.builder.text_bytes + sum(x.text_len for x in head.cut)
                          if head_n else 0)
            lo = [c.min_ts for c in chunks]
            hi = [c.max_ts for c in chunks]
            if head_n:
                hl, hh = head.bounds()
                lo.append(hl)
                hi.append(hh)
            streams.append({
                "labels": entry.labels.as_dict() if hasattr(entry.labels, "as_dict")
                else dict(entry.labels),
                "chunks": [{"segment": c.segment, "offset": c.offset, "length": c.length,
                            "entries": c.n_entries, "min_ts": c.min_ts, "max_ts": c.max_ts,
                            "text_bytes": c.text_bytes, "stored_bytes": c.stored_bytes}
                           for c in chunks],
                "_refs": chunks,
                "entries": sum(c.n_entries for c in chunks) + head_n,
                "head_entries": head_n,
                "head_bytes": head_bytes,
                "text_bytes": sum(c.text_bytes for c in chunks),
                "stored_bytes": sum(c.stored_bytes for c in chunks),
                "min_ts": min(lo) if lo else None,
                "max_ts": max(hi) if hi else None,
            })
    finally:
        store.close()
    # The data itself is read after the store is closed: segment files are
    # immutable once indexed, and this keeps the store's lock short.
    found = _segment_chunks(path, {c.segment for s in streams for c in s["_refs"]})
    for s in streams:
        for rec, ref in zip(s["chunks"], s.pop("_refs"), strict=True):
            rec.update(_chunk_structure(ref, found))
        s["blocks"] = sum(c["blocks"] for c in s["chunks"])
        s["codecs"] = sorted({x for c in s["chunks"] for x in c["codecs"]})
        s["damaged_chunks"] = sum(not c["checksum_ok"] for c in s["chunks"])
    streams.sort(key=lambda s: sorted(s["labels"].items()))
    seg_n, seg_size = _dir_size(os.path.join(path, "segments"), ".seg")
    wal_n, wal_size = _dir_size(os.path.join(path, "wal"), ".wal")
    try:
        idx_size = os.path.getsize(os.path.join(path, "index.log"))
    except OSError:
        idx_size = 0
    tot = {
        "streams": len(streams),
        "chunks": sum(len(s["chunks"]) for s in streams),
        "blocks": sum(s["blocks"] for s in streams),
        "damaged_chunks": sum(s["damaged_chunks"] for s in streams),
        "entries": sum(s["entries"] for s in streams),
        "head_entries": sum(s["head_entries"] for s in streams),
        "text_bytes": sum(s["text_bytes"] for s in streams),
        "stored_bytes": sum(s["stored_bytes"] for s in streams),
        "segment_files": seg_n, "segment_bytes": seg_size,
        "wal_files": wal_n, "wal_bytes": wal_size, "index_bytes": idx_size,
    }
    los = [s["min_ts"] for s in streams if s["min_ts"] is not None]
    his = [s["max_ts"] for s in streams if s["max_ts"] is not None]
    tot["min_ts"] = min(los) if los else None
    tot["max_ts"] = max(his) if his else None
    status = 1 if tot["damaged_chunks"] else 0
    if args.output == "jsonl":
        out.write(json.dumps({"path": os.path.abspath(path), "totals": tot,
                              "streams": streams}) + "\n")
        return status
    color = r.use_color(args.color, out)
    pal = r.Palette(color)
    out.write(pal(f"store {os.path.abspath(path)}", "bold") + "\n")
    out.write(f"{r.format_count(tot['streams'])} streams, {r.format_count(tot['chunks'])} "
              f"sealed chunks of {r.format_count(tot['blocks'])} blocks, "
              f"{r.format_count(tot['entries'])} entries "
              f"({r.format_count(tot['head_entries'])} in open head blocks)\n")
    out.write(f"sealed: {r.format_bytes(tot['text_bytes'])} of lines -> "
              f"{r.format_bytes(tot['stored_bytes'])} stored, ratio "
              f"{_ratio(tot['text_bytes'], tot['stored_bytes'])}\n")
    if tot["min_ts"] is not None:
        out.write(f"time: {r.format_ns(tot['min_ts'])} .. {r.format_ns(tot['max_ts'])}\n")
    out.write(f"files: {seg_n} segment file{'s' * (seg_n != 1)} ({r.format_bytes(seg_size)}), "
              f"{wal_n} WAL file{'s' * (wal_n != 1)} "
              f"({r.format_bytes(wal_size)}), index.log ({r.format_bytes(idx_size)})\n")
    if tot["damaged_chunks"]:
        out.write(pal(f"checksums: {tot['damaged_chunks']} chunk(s) FAILED (chunkstore verify "
                      f"lists the offsets)", "bold_red") + "\n\n")
    else:
        out.write(f"checksums: all {r.format_count(tot['blocks'])} blocks ok\n\n")

    def crc(s: dict) -> str:
        if not s["chunks"]:
            return "-"
        return f"{s['damaged_chunks']} FAILED" if s["damaged_chunks"] else "ok"

    rows = [[r.format_labels(s["labels"]), len(s["chunks"]), r.format_count(s["blocks"]),
             ",".join(s["codecs"]) or "-", r.format_count(s["entries"]),
             r.format_count(s["head_entries"]),
             r.format_ts_short(s["min_ts"]) if s["min_ts"] is not None else "-",
             r.format_ts_short(s["max_ts"]) if s["max_ts"] is not None else "-",
             r.format_bytes(s["text_bytes"]), r.format_bytes(s["stored_bytes"]),
             _ratio(s["text_bytes"], s["stored_bytes"]), crc(s)]
            for s in streams]
    r.print_table(["STREAM", "CHUNKS", "BLOCKS", "CODECS", "ENTRIES", "IN HEAD", "FROM", "TO",
                   "LINES", "STORED", "RATIO", "CRC"], rows,
                  out, align="lrrlrrllrrrl", color=color)
    if args.chunks:
        for s in streams:
            out.write("\n" + pal(r.format_labels(s["labels"]), "cyan") + "\n")
            if not s["chunks"]:
                out.write("  (no sealed chunks)\n")
                continue
            crow = [[c["segment"], c["offset"], r.format_count(c["entries"]),
                     r.format_ns(c["min_ts"]), r.format_ns(c["max_ts"]), c["blocks"],
                     ",".join(c["codecs"]) or "-",
                     r.format_bytes(c["text_bytes"]), r.format_bytes(c["stored_bytes"]),
                     _ratio(c["text_bytes"], c["stored_bytes"]),
                     "ok" if c["checksum_ok"] else "FAILED"] for c in s["chunks"]]
            _indent_table(["SEGMENT", "OFFSET", "ENTRIES", "FROM", "TO", "BLOCKS", "CODECS",
                           "LINES", "STORED", "RATIO", "CRC"], crow, out, "lrrllrlrrrl")
    return status


# ---------------------------------------------------------------------------
# verify

def cmd_verify(args, out, err) -> int:
    store = open_store(args.store)
    try:
        report = store.verify()
    finally:
        store.close()
    if report.ok:
        out.write(str(report) + "\n")
        return 0
    head = str(report).splitlines()[0]
    out.write(head + "\n")
    by_file: dict[str, list] = {}
    root = os.path.abspath(args.store)
    for p in report.problems:
        path = getattr(p, "path", None) or "(unknown file)"
        if path.startswith(root + os.sep):
            path = os.path.relpath(path, root)
        by_file.setdefault(path, []).append(p)
    for path in sorted(by_file):
        out.write(f"DAMAGED {path}\n")
        for p in by_file[path]:
            off = getattr(p, "offset", None)
            where = f"offset {off}" if off is not None else "offset unknown"
            out.write(f"  {where}: {getattr(p, 'detail', str(p))}\n")
    err.write(f"chunkstore: error: verify failed: {len(report.problems)} problem(s) in "
              f"{len(by_file)} file(s)\n")
    return 1


# ---------------------------------------------------------------------------
# maintenance

def print_report(name: str, report, out) -> None:
    """Print a maintenance report field by field, whatever its type."""
    if report is None:
        out.write(f"{name}: done\n")
        return
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        items = [(f.name, getattr(report, f.name)) for f in dataclasses.fields(report)]
    elif isinstance(report, dict):
        items = list(report.items())
    elif hasattr(report, "__dict__") and vars(report):
        items = [(k, v) for k, v in vars(report).items() if not k.startswith("_")]
    else:
        out.write(f"{name}: {report}\n")
        return
    out.write(f"{name}:\n")
    w = max((len(k) for k, _ in items), default=0)
    for k, v in items:
        if isinstance(v, (list, tuple)) and not v:
            out.write(f"  {k.ljust(w)}  -\n")
        elif isinstance(v, (list, tuple)):
            out.write(f"  {k.ljust(w)}  {len(v)}\n")
            for x in v[:50]:
                out.write(f"    {x}\n")
            if len(v) > 50:
                out.write(f"    ... and {len(v) - 50} more\n")
        else:
            if isinstance(v, int) and not isinstance(v, bool) and "bytes" in k:
                v = f"{r.format_count(v)} ({r.format_bytes(v)})"
            elif isinstance(v, int) and not isinstance(v, bool):
                v = r.format_count(v)
            elif isinstance(v, float):
                v = f"{v:.3f}" if k.endswith("seconds") else f"{v:.4g}"
            out.write(f"  {k.ljust(w)}  {v}\n")


def _maintenance_error(command: str, err) -> int:
    err.write(f"chunkstore: {command} is not available in this version\n")
    return 1


def cmd_compact(args, out, err) -> int:
    if store_exists(args.store) and not hasattr(chunkstore.Store, "compact"):
        return _maintenance_error("compact", err)
    store = open_store(args.store, write=True)
    try:
        report = store.compact()
    finally:
        store.close()
    print_report("compact", report, out)
    return 0


def _retention_policy(args):
    """The ``RetentionPolicy`` the options describe, or None when none was given."""
    from chunkstore.cli_render import TimeParseError, parse_duration
    from chunkstore.errors import QueryError
    from chunkstore.retention import RetentionPolicy

    period = getattr(args, "period", None)
    rules = getattr(args, "rule", None) or []
    max_bytes = getattr(args, "max_bytes", None)
    if period is None and not rules and max_bytes is None:
        return None
    compiled = []
    for selector, text in rules:
        try:
            compiled.append((selector, parse_duration(text) / 1e9))
        except TimeParseError as exc:
            raise CLIError(f"--rule {selector} {text}: {exc}", 2) from None
    try:
        return RetentionPolicy(period=None if period is None else period / 1e9,
                               max_bytes=max_bytes, rules=compiled)
    except QueryError as exc:
        raise CLIError(f"--rule: {exc}", 2) from None
    except ValueError as exc:
        raise CLIError(f"retention: {exc}", 2) from None


def cmd_retention(args, out, err) -> int:
    if store_exists(args.store) and not hasattr(chunkstore.Store, "apply_retention"):
        return _maintenance_error("retention", err)
    policy = _retention_policy(args)
    now = getattr(args, "now", None)
    store = open_store(args.store, write=True,
                       **({"retention": policy} if policy is not None else {}))
    try:
        if args.dry_run:
            try:
                report = store.apply_retention(now, dry_run=True)
            except TypeError:
                store.close()
                return _maintenance_error("retention --dry-run", err)
        else:
            report = store.apply_retention(now)
    finally:
        store.close()
    print_report("retention (dry run)" if args.dry_run else "retention", report, out)
    if policy is None:
        err.write("chunkstore: note: no policy given (--period, --rule or --max-bytes), so "
                  "nothing expires; a store does not record the policy of the program that "
                  "writes it\n")
    return 0


def cmd_delete(args, out, err) -> int:
    from chunkstore import logql

    logql.parse(args.query)
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise CLIError("empty time range: --to is not after --from", 2)
    if store_exists(args.store) and not hasattr(chunkstore.Store, "delete"):
        return _maintenance_error("delete", err)
    store = open_store(args.store, write=True)
    try:
        report = store.delete(args.query, args.start, args.end)
    finally:
        store.close()
    print_report("delete", report, out)
    return 0
