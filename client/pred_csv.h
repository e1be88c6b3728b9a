/*
 * client/pred_csv.h — predictions as CSV on stdout, for `predict` and
 * `adapt`.
 *
 * A reply of POST /v1/jobs/{id}/predict holds one task ("task", "kind",
 * "labels", "predictions") or several ("tasks": {name: {...}}); an adapt
 * reply holds "predictions" (and "labels") without a task. Each task
 * becomes columns: its name (or "prediction" when the reply names none)
 * holding the label or the value, and for a classification one
 * "<name>_p_<label>" column per label with its probability. Rows follow the
 * input's order. Fields are quoted as RFC 4180 wants.
 */
#ifndef CLI_PRED_CSV_H
#define CLI_PRED_CSV_H

#include <jansson.h>

/* Prints the reply's rows (and first the header line when header is set).
 * Returns the number of rows printed, or -1 (after printing why) if the
 * reply has no predictions in the expected shape. */
long cli_pred_csv(const json_t *reply, int header);

#endif
