#!/usr/bin/env python3
"""bench/peers/gen_numeric_csv.py ROWS > FILE — the numeric CSV of the ingestion
benchmark (issue 4): a header c0..c15 and ROWS rows of 16 numbers, about 100
bytes a row (1M rows: ~100 MB). Decimals, integers and a few exponents, as an
export of measurements looks; deterministic (seed 7)."""
import random
import sys

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
r = random.Random(7)
w = sys.stdout.write
w(','.join('c%d' % i for i in range(16)) + '\n')
buf = []
for i in range(rows):
    f = []
    for j in range(16):
        k = (i + j) % 7
        if k < 3:
            f.append('%.2f' % (r.random() * 100 - 50))
        elif k < 5:
            f.append('%d' % r.randrange(-1000, 1000))
        elif k < 6:
            f.append('%.4f' % r.random())
        else:
            f.append('%.2e' % (r.random() * 1e-3))
    buf.append(','.join(f))
    if len(buf) == 10000:
        w('\n'.join(buf) + '\n')
        buf = []
if buf:
    w('\n'.join(buf) + '\n')
