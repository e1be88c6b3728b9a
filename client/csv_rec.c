/*
 * client/csv_rec.c — CSV records and fields (see csv_rec.h).
 *
 * Records are found by a two-state scan (inside quotes or not), reading
 * with getc: the files predict and adapt send are bounded by the server's
 * body limit, so simplicity wins over speed here.
 */
#include "client/csv_rec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/out.h"

void cli_csv_init(cli_csv_reader *r, FILE *f)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->next_line = 1;
}

void cli_csv_free(cli_csv_reader *r)
{
    cli_buf_free(&r->rec);
}

static int blank(const cli_buf *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (!strchr(" \t\r\n", b->data[i]))
            return 0;
    return 1;
}

int cli_csv_next(cli_csv_reader *r, const char *what)
{
    for (;;) {
        int c, quoted = 0;
        r->rec.len = 0;
        r->line = r->next_line;
        while ((c = getc(r->f)) != EOF) {
            char ch = (char)c;
            if (r->rec.len >= CLI_CSV_MAX_RECORD) {
                cli_err("%s: the record at line %ld is longer than %u bytes", what, r->line,
                        CLI_CSV_MAX_RECORD);
                return -1;
            }
            if (cli_buf_append(&r->rec, &ch, 1)) {
                cli_err("out of memory");
                return -1;
            }
            if (ch == '"') {
                quoted = !quoted;
            } else if (ch == '\n' || ch == '\r') {
                if (ch == '\r') { /* CRLF stays one line end; a lone CR is one too */
                    int d = getc(r->f);
                    if (d == '\n' && cli_buf_append(&r->rec, "\n", 1)) {
                        cli_err("out of memory");
                        return -1;
                    }
                    if (d != '\n' && d != EOF)
                        ungetc(d, r->f);
                }
                r->next_line++;
                if (!quoted)
                    break;
            }
        }
        if (ferror(r->f)) {
            cli_err("cannot read %s: %s", what, strerror(errno));
            return -1;
        }
        if (quoted) {
            cli_err("%s: the quote opened at line %ld is never closed", what, r->line);
            return -1;
        }
        if (r->rec.len == 0)
            return 0;
        if (!blank(&r->rec))
            return 1;
    }
}

void cli_csv_fields_free(cli_csv_fields *f)
{
    free(f->store);
    f->store = NULL;
    f->n = 0;
}

int cli_csv_split(const char *rec, size_t len, char delim, cli_csv_fields *out)
{
    memset(out, 0, sizeof *out);
    while (len && (rec[len - 1] == '\n' || rec[len - 1] == '\r'))
        len--;
    if (!(out->store = malloc(len + 1)))
        return -1;
    size_t i = 0, o = 0;
    for (;;) {
        if (out->n == CLI_CSV_MAX_FIELDS) {
            cli_csv_fields_free(out);
            return -1;
        }
        while (i < len && (rec[i] == ' ' || rec[i] == '\t') && rec[i] != delim)
            i++;
        char *start = out->store + o;
        int q = i < len && rec[i] == '"';
        if (q) {
            for (i++; i < len; i++) {
                if (rec[i] == '"') {
                    if (i + 1 < len && rec[i + 1] == '"')
                        i++;
                    else {
                        i++;
                        break;
                    }
                }
                out->store[o++] = rec[i];
            }
            while (i < len && rec[i] != delim)
                i++; /* anything after the closing quote: ignored */
        } else {
            size_t s = o;
            while (i < len && rec[i] != delim)
                out->store[o++] = rec[i++];
            while (o > s && (out->store[o - 1] == ' ' || out->store[o - 1] == '\t'))
                o--;
        }
        out->store[o++] = '\0';
        out->quoted[out->n] = q;
        out->field[out->n++] = start;
        if (i >= len)
            break;
        i++; /* the delimiter */
    }
    return 0;
}
