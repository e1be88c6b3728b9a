#!/usr/bin/env python3
"""bench/peers/csv_peers.py FILE — the peers of the ingestion benchmark (issue 4)
on the same file, one thread each, best of --repeat runs, MB/s of the file:
  pandas.read_csv (C engine, float32), numpy.loadtxt (float32),
  sqlite: the parsed float32 rows stored as 4096-row BLOBs in one WAL database
  with synchronous=FULL (the store alone: what mtld's store does after parsing).
Needs python3-pandas (Debian), which brings numpy."""
import argparse
import os
import sqlite3
import tempfile
import time

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument('file')
ap.add_argument('--repeat', type=int, default=3)
ap.add_argument('--skip-loadtxt', action='store_true')
a = ap.parse_args()
mb = os.path.getsize(a.file) / 1e6


def best(fn):
    """Best wall time and best CPU time (this process) of a.repeat runs."""
    ts, cs = [], []
    out = None
    for _ in range(a.repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return min(ts), min(cs), out


def show(name, t, c, extra=''):
    print('%-30s %7.1f MB/s wall (%.2f s), %7.1f MB per CPU second%s' % (name, mb / t, t, mb / c, extra))


t, c, df = best(lambda: pd.read_csv(a.file, dtype=np.float32, engine='c'))
show('pandas.read_csv', t, c, ' (%d rows)' % len(df))
arr = df.to_numpy(dtype=np.float32)
if not a.skip_loadtxt:
    t, c, _ = best(lambda: np.loadtxt(a.file, delimiter=',', skiprows=1, dtype=np.float32))
    show('numpy.loadtxt', t, c)


def store():
    d = tempfile.mkdtemp()
    db = sqlite3.connect(os.path.join(d, 'x.db'), isolation_level=None)
    db.execute('PRAGMA journal_mode=WAL')
    db.execute('PRAGMA synchronous=FULL')
    db.execute('CREATE TABLE chunks(seq INTEGER PRIMARY KEY, data BLOB)')
    db.execute('BEGIN IMMEDIATE')
    for s in range(0, len(arr), 4096):
        db.execute('INSERT INTO chunks VALUES (?, ?)', (s // 4096, arr[s:s + 4096].tobytes()))
    db.execute('COMMIT')
    db.close()
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


t, c, _ = best(store)
show('sqlite 4096-row float32 blobs', t, c, ' of CSV (%.0f MB of floats)' % (arr.nbytes / 1e6))
