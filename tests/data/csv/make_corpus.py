#!/usr/bin/env python3
"""Writes the CSV corpus of tests/integration/test_csv_corpus.c: malformed and
untidy files, each with its expected outcome in MANIFEST (tab-separated:
file, query, status, code, expectations). Run from this directory; the files
it writes are checked in, this script only documents how they were made.

Expectations: rows= cols= types= (n number, c category per column)
names=a|b  levels=COL:a|b  dropped=  missing=COL:N  filled=COL:N
row=N:v|v (row N of GET /v1/datasets/{id}/rows, 0-based: numbers compared as
float32, texts exactly; several row= may be given)
at=LINE:COL (the error message starts "line LINE, column COL: ", or
"line LINE: " when COL is 0; 0:0 = no line)  msg=TEXT (rest of the line:
a substring of the message).
A value runs to the next " key=" of this list (msg= to the end of the line),
so values may hold spaces; in names, levels and row values \\n, \\r and
\\\\ stand for a newline, a carriage return and a backslash.

The daemon of the test runs with --max-field 1000 --max-line 4000
--max-levels 50 --max-columns 20.
"""
import gzip, os

entries = []

def add(name, data, status, code='-', expect='', query='-'):
    if isinstance(data, str):
        data = data.encode('utf-8')
    with open(name, 'wb') as f:
        f.write(data)
    entries.append((name, query, str(status), code, expect))

# ---- untidy but fine ----------------------------------------------------
add('basic.csv', 'a,b\n1,x\n2,y\n', 201, expect='rows=2 cols=2 types=nc names=a|b levels=1:x|y row=0:1|x row=1:2|y')
add('crlf.csv', 'a,b\r\n1,x\r\n2,y\r\n', 201, expect='rows=2 cols=2 types=nc')
add('cr_only.csv', 'a,b\r1,x\r2,y\r', 201, expect='rows=2 cols=2 types=nc row=1:2|y')
add('bom.csv', '\ufeffid,v\n1,2\n', 201, expect='rows=1 cols=2 types=nn names=id|v row=0:1|2')
add('trailing_blank_lines.csv', 'a\n1\n2\n\n\n\r\n\n', 201, expect='rows=2 cols=1 types=n row=1:2')
add('no_final_newline.csv', 'a,b\n1,2\n3,4', 201, expect='rows=2 cols=2 types=nn row=1:3|4')
add('blank_lines_between.csv', 'a,b\n\n1,2\n   \n3,4\n', 201, expect='rows=2 cols=2 types=nn')
add('quoted_delimiters.csv', '"x,y",z\n"1,5",2\n"3,5",4\n', 201,
    expect='rows=2 cols=2 types=cn names=x,y|z levels=0:1,5|3,5 row=1:3,5|4')
add('doubled_quotes.csv', 'q\n"he said ""hi"""\n"plain"\n', 201,
    expect='rows=2 cols=1 types=c levels=0:he said "hi"|plain')
add('quoted_newlines.csv', 'note,n\n"line one\nline two",1\n"a\r\nb",2\n', 201,
    expect='rows=2 cols=2 types=cn levels=0:line one\\nline two|a\\r\\nb row=1:a\\r\\nb|2')
add('spaces_trimmed.csv', ' a , b \n 1 , x y \n\t2\t,  z\n', 201,
    expect='rows=2 cols=2 types=nc names=a|b levels=1:x y|z row=0:1|x y')
add('spaces_around_quotes.csv', 'a,b\n  "q" ,1\n"r"  ,2\n', 201, expect='rows=2 cols=2 types=cn levels=0:q|r')
add('quote_inside_unquoted.csv', 'a\nab"c\nd\n', 201, expect='rows=2 cols=1 types=c levels=0:ab"c|d')
add('semicolon.csv', 'a;b\n1,5;2\n3;4\n', 201, query='delimiter=%3B',
    expect='rows=2 cols=2 types=cn levels=0:1,5|3 row=0:1,5|2')
add('tab.tsv', 'a\tb\n1\t2\n3\t4\n', 201, query='delimiter=%09', expect='rows=2 cols=2 types=nn row=1:3|4')
add('wrong_delimiter.csv', 'a;b\n1;2\n', 201, expect='rows=1 cols=1 types=c names=a;b')
add('no_header.csv', '1,x\n2,y\n3,x\n', 201, query='header=false',
    expect='rows=3 cols=2 types=nc names=c0|c1 row=0:1|x row=2:3|x')
add('missing_drop.csv', 'a,b\n1,x\nNA,y\n3,\n4,z\n', 201, query='missing=drop',
    expect='rows=2 cols=2 types=nc dropped=2 missing=0:1 missing=1:1 row=0:1|x row=1:4|z')
add('missing_fill.csv', 'a,b\n1,x\nN/A,y\n3,?\n5,x\nnull,NULL\n', 201, query='missing=fill',
    expect='rows=5 cols=2 types=nc filled=0:2 filled=1:2 levels=1:x|y row=1:3|y row=2:3|x row=4:3|x')
add('strict_numbers.csv', 'a,b,c,d\n1,12abc,0x10,1.\n2,3,4,5\n', 201,
    expect='rows=2 cols=4 types=nccc row=0:1|12abc|0x10|1.')
add('exponents.csv', 'a\n1e3\n-2.5E-2\n.5\n+7\n-0\n', 201, expect='rows=5 cols=1 types=n row=0:1000 row=1:-0.025 row=2:0.5 row=3:7 row=4:0')
add('utf8_names.csv', 'é,€,日本\n1,ü,x\n', 201, expect='rows=1 cols=3 types=ncc names=é|€|日本 row=0:1|ü|x')
add('single_column.csv', 'only\n5\n', 201, expect='rows=1 cols=1 types=n')
add('many_columns.csv', ','.join('c%d' % i for i in range(20)) + '\n' +
    ','.join(str(i) for i in range(20)) + '\n', 201, expect='rows=1 cols=20')
add('late_text_turn.csv', 'n,v\n' + ''.join('%d,%d\n' % (i, i % 5) for i in range(9000)) +
    '9000,five\n', 201, expect='rows=9001 cols=2 types=nc levels=1:0|1|2|3|4|five row=3:3|3 row=8999:8999|4 row=9000:9000|five')
add('spellings_of_one.csv', 'v\n' + ''.join(('1\n', '1.0\n', '1e0\n')[i % 3] for i in range(6000)) +
    'word\n', 201, expect='rows=6001 cols=1 types=c levels=0:1|1.0|1e0|word row=0:1 row=4999:1.0 row=5999:1e0 row=6000:word')
add('nan_first_is_text.csv', 'x\nnan\n1\n', 201, expect='rows=2 cols=1 types=c levels=0:nan|1')
add('quoted_number.csv', 'x\n"1"\n2\n', 201, expect='rows=2 cols=1 types=n row=0:1')

# ---- errors: line and column --------------------------------------------
add('ragged_short.csv', 'a,b\n1,2\n3\n', 422, 'invalid_csv', 'at=3:0 msg=has 1 fields, expected 2')
add('ragged_long.csv', 'a,b\n1,2\n3,4,5\n', 422, 'invalid_csv', 'at=3:0 msg=has 3 fields')
add('unterminated_quote.csv', 'a,b\n1,"open\n2,3\n', 422, 'invalid_csv',
    'at=2:2 msg=unterminated quoted field')
add('text_after_quote.csv', 'a,b\n1,"ab"c\n', 422, 'invalid_csv', 'at=2:2 msg=text after closing quote')
add('invalid_utf8.csv', b'a,b\n1,ok\n2,bad\xff\n', 422, 'invalid_csv', 'at=3:2 msg=invalid UTF-8')
add('overlong_utf8.csv', b'a\n\xc0\xaf\n', 422, 'invalid_csv', 'at=2:1 msg=invalid UTF-8')
add('truncated_utf8.csv', b'a\nx\xe2\x82', 422, 'invalid_csv', 'at=2:1 msg=truncated')
add('nul_byte.csv', b'a,b\n1,x\x00y\n', 422, 'invalid_csv', 'at=2:2 msg=NUL byte')
add('empty.csv', '', 422, 'empty_csv', 'at=0:0 msg=no header row')
add('only_blank_lines.csv', '\n\n \r\n', 422, 'empty_csv', 'at=0:0 msg=no header row')
add('bom_only.csv', '\ufeff', 422, 'empty_csv', 'at=0:0')
add('header_only.csv', 'a,b,c\n', 422, 'empty_csv', 'at=0:0 msg=no data rows after the header')
add('empty_header_name.csv', 'a,,c\n1,2,3\n', 422, 'invalid_csv', 'at=1:2 msg=empty name')
add('duplicate_header.csv', 'a,b,a\n1,2,3\n', 422, 'invalid_csv', "at=1:3 msg=same name 'a' as column 1")
add('missing_default_error.csv', 'a,b\n1,2\n3,NA\n', 422, 'invalid_csv',
    "at=3:2 msg=missing value in column 'b'")
add('quoted_empty_is_missing.csv', 'a,b\n1,""\n', 422, 'invalid_csv', 'at=2:2 msg=missing value')
add('nan_after_numbers.csv', 'a,x\nq,1.5\nr,nan\n', 422, 'invalid_csv', 'at=3:2 msg=not a finite number')
add('inf_after_numbers.csv', 'x\n1\n2\n-Infinity\n', 422, 'invalid_csv', 'at=4:1 msg=not a finite number')
add('float32_overflow.csv', 'x\n1\n1e39\n', 422, 'invalid_csv', 'at=3:1 msg=out of range')
add('all_dropped.csv', 'a\nNA\n?\n', 422, 'empty_csv', 'at=0:0 msg=all 2 were dropped', query='missing=drop')
add('fill_nothing.csv', 'a,b\n1,\n2,NA\n', 422, 'invalid_csv', 'at=0:0 msg=only missing values',
    query='missing=fill')
add('bad_delimiter_param.csv', 'a|b\n1|2\n', 422, 'invalid', "at=0:0 msg='delimiter' must be",
    query='delimiter=%7C')

# ---- limits (the test daemon's) ------------------------------------------
add('field_too_long.csv', 'a,b\n1,' + 'x' * 2000 + '\n', 413, 'too_large', 'at=2:2 msg=limit max_field=1000')
add('line_too_long.csv', ','.join('c%d' % i for i in range(10)) + '\n' +
    ','.join('y' * 500 for i in range(10)) + '\n', 413, 'too_large', 'at=2:0 msg=limit max_line=4000')
add('too_many_columns.csv', ','.join('c%d' % i for i in range(25)) + '\n' +
    ','.join('1' for i in range(25)) + '\n', 413, 'too_large', 'at=1:21 msg=limit max_columns=20')
add('too_many_levels.csv', 'k\n' + ''.join('level%d\n' % i for i in range(60)), 413, 'too_large',
    "at=52:1 msg=limit max_levels=50")
add('numbers_then_too_many_levels.csv', 'k\n' + ''.join('%d\n' % i for i in range(60)) + 'x\n', 413,
    'too_large', "at=62:1 msg=limit max_levels=50")

# ---- gzip bodies (sent with Content-Encoding: gzip) -----------------------
good = 'a,b\n' + ''.join('%d,%s\n' % (i, 'xyz'[i % 3]) for i in range(5000))
add('gzip_good.csv.gz', gzip.compress(good.encode(), mtime=0), 201, expect='rows=5000 cols=2 types=nc row=4999:4999|y')
two = gzip.compress(b'a,b\n1,2\n', mtime=0) + gzip.compress(b'3,4\n', mtime=0)
add('gzip_two_members.csv.gz', two, 201, expect='rows=2 cols=2 types=nn row=1:3|4')
z = gzip.compress(good.encode(), mtime=0)
add('gzip_truncated.csv.gz', z[:len(z) // 2], 400, 'invalid_encoding', 'at=0:0 msg=ends in the middle')
bad = bytearray(z)
bad[len(bad) // 2] ^= 0xFF
add('gzip_corrupt.csv.gz', bytes(bad), 400, 'invalid_encoding', 'at=0:0 msg=corrupt')
add('gzip_not_gzip.csv.gz', b'a,b\n1,2\n', 400, 'invalid_encoding', 'at=0:0 msg=corrupt')
add('gzip_bad_csv.csv.gz', gzip.compress(b'a,b\n1,2\n3\n', mtime=0), 422, 'invalid_csv', 'at=3:0')

with open('MANIFEST', 'w') as f:
    f.write('# file\tquery\tstatus\tcode\texpectations (see make_corpus.py)\n')
    for e in entries:
        f.write('\t'.join(e) + '\n')
print(len(entries), 'files')
