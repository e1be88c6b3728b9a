/*
 * client/csv_rec.h — reading a CSV file one record at a time, for the
 * commands that send rows to the server in pieces (predict, adapt).
 *
 * The server parses CSV itself; the client only needs record boundaries
 * (a line end outside double quotes: LF, CRLF or a lone CR), and, for
 * adapt, the fields of a record (RFC 4180 unquoting, spaces around an
 * unquoted field trimmed as the server does). A record is limited to
 * CLI_CSV_MAX_RECORD bytes, so a file without line ends cannot eat memory.
 */
#ifndef CLI_CSV_REC_H
#define CLI_CSV_REC_H

#include <stdio.h>

#include "client/http.h"

#define CLI_CSV_MAX_RECORD (1u << 20)
#define CLI_CSV_MAX_FIELDS 4096

typedef struct cli_csv_reader {
    FILE *f;      /* borrowed */
    cli_buf rec;  /* the last record's bytes, its line end included */
    long line;    /* line number where the last record starts (1-based) */
    long next_line;
} cli_csv_reader;

void cli_csv_init(cli_csv_reader *r, FILE *f);
/* Reads the next record that is not blank into r->rec. Returns 1, 0 at the
 * end of the file, or -1 (after printing why, naming `what`: the file name)
 * on a read error, an unterminated quote or a record too long. */
int cli_csv_next(cli_csv_reader *r, const char *what);
void cli_csv_free(cli_csv_reader *r);

/* The fields of one record: pointers into `store` (owned, free with
 * cli_csv_fields_free), NUL-terminated. */
typedef struct cli_csv_fields {
    char *store;
    char *field[CLI_CSV_MAX_FIELDS];
    int quoted[CLI_CSV_MAX_FIELDS]; /* the field was quoted (so it is text) */
    int n;
} cli_csv_fields;

/* Splits rec (len bytes) on delim. 0, or -1 if out of memory or there are
 * more than CLI_CSV_MAX_FIELDS fields. */
int cli_csv_split(const char *rec, size_t len, char delim, cli_csv_fields *out);
void cli_csv_fields_free(cli_csv_fields *f);

#endif
