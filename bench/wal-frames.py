#!/usr/bin/env python3
"""Which B-trees the SQLite backend's commits write: WAL frames attributed to tables and indexes.

Usage, while a load run writes DIR (wagate-bench load --backend sqlite --data-dir DIR):
    cp DIR/wagate.db-wal snap1; sleep 1; cp DIR/wagate.db-wal snap2   # during the run
    python3 bench/wal-frames.py DIR/wagate.db snap1 snap2              # after it
(the same with wagate-inbound.db for ingest's writes: blobs and the inbound queue).

Each WAL frame is a 24-byte header (page number, the database size on a commit's last frame,
and the WAL's salts) and one page. A WAL started over is written again from its beginning: the
frames after the last one written since carry the salts of before and are not counted (before
session 35 they were). Pages are attributed to the table or index that owns them at the end
(SQLite's dbstat), so pages freed and reused during the run (the queue tables' churn) may be
counted under whatever owns them last.
"""
import collections
import sqlite3
import struct
import sys

db = sys.argv[1]
conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
owner = dict((pageno, name) for name, pageno in conn.execute("SELECT name, pageno FROM dbstat"))
page_size = conn.execute("PRAGMA page_size").fetchone()[0]
by_tree = collections.Counter()
frames = commits = 0
for snapshot in sys.argv[2:]:
    data = open(snapshot, "rb").read()
    frame = 24 + page_size
    offset = 32  # the WAL header
    salts = struct.unpack(">II", data[16:24])
    while offset + frame <= len(data):
        page, size_after_commit, salt1, salt2 = struct.unpack(">IIII", data[offset : offset + 16])
        if (salt1, salt2) != salts:
            break  # a frame of the WAL before it started over
        if page == 0:
            break
        by_tree[owner.get(page, "(free or new)")] += 1
        frames += 1
        commits += size_after_commit != 0
        offset += frame
print(f"pages of {page_size} B; {frames} frames, {commits} commits, {frames / max(commits, 1):.1f} frames per commit")
print("| table or index | frames | share | per commit |")
print("|---|---|---|---|")
for name, n in by_tree.most_common():
    print(f"| {name} | {n} | {100 * n / frames:.1f}% | {n / max(commits, 1):.2f} |")
