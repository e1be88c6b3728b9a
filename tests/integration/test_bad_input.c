/*
 * tests/integration/test_bad_input.c — every route of the skeleton answers
 * bad input with a 4xx JSON error that names what was wrong, changes
 * nothing, and the daemon keeps serving.
 */
#include <check.h>
#include <string.h>

#include "tests/integration/harness.h"

static mtld_proc P;
static char DIR_[256];

static void setup(void)
{
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&P, DIR_, NULL);
}

static void teardown(void)
{
    h_stop_healthy(&P); /* still serving after everything the test threw at it */
}

static h_resp post(const char *path, const char *ctype, const char *body)
{
    return h_req(&P, "POST", path, ctype, body, strlen(body));
}

static void expect(h_resp r, long status, const char *code, const char *needle, const char *field)
{
    h_expect_error(&r, status, code, needle, field);
    h_resp_free(&r);
}

/* A 4xx whose message is exactly msg (so a location or a key path is said
 * once, and right) and whose field is field ("" for none). */
static void expect_exact(h_resp r, long status, const char *field, const char *msg)
{
    h_expect_error(&r, status, NULL, NULL, field[0] ? field : NULL);
    json_t *j = h_json(&r);
    json_t *e = json_object_get(j, "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "message")), msg);
    if (!field[0])
        ck_assert_ptr_null(json_object_get(e, "field"));
    json_decref(j);
    h_resp_free(&r);
}

/* Each error says its location or key path once, with the type expected. */
START_TEST(messages_say_where_once)
{
    const char *D = "/v1/datasets?name=a", *C = "text/csv", *J = "application/json";
    expect_exact(post(D, C, "a,b\n1,2\n3\n"), 422, "", "line 3: the row has 1 fields, expected 2");
    expect_exact(post(D, C, "a,b\n1,\xff\n"), 422, "", "line 2, column 2: invalid UTF-8 ('b')");
    expect_exact(post(D, C, "a,b\n1,\n"), 422, "", "line 2, column 2: missing value in column 'b'");
    json_decref(h_post_json(&P, "/v1/tasks", "{\"name\":\"sine\",\"generator\":\"sinusoid\"}", 201));
    expect_exact(post("/v1/jobs", J, "{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"meta_batch\":0}"),
                 422, "meta_batch", "'meta_batch' must be from 1 to 1000");
    expect_exact(post("/v1/jobs", J, "{\"algorithm\":\"maml\",\"tasks\":[\"sine\"],\"steps\":0}"),
                 422, "steps", "'steps' must be from 1 to 10000000");
    expect_exact(post("/v1/jobs", J, "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":{}}]}"),
                 422, "tasks[0].task", "'tasks[0].task' must be a task name (at most 64 characters) or id");
    expect_exact(post("/v1/jobs", J, "{\"algorithm\":\"multitask\",\"tasks\":[{\"weight\":1}]}"),
                 422, "tasks[0].task",
                 "'tasks[0].task' is required: a task name (at most 64 characters) or id");
    expect_exact(post("/v1/jobs", J, "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"sine\",\"w\":1}]}"),
                 422, "tasks[0].w",
                 "unknown key 'tasks[0].w' (expected task, weight, loss, label_smoothing, huber_delta)");
    const char *T = "/v1/tasks";
    expect_exact(post(T, J, "{\"dataset\":{}}"), 422, "name", "'name' is required and must be a string");
    expect_exact(post(T, J, "{\"name\":\"t\",\"dataset\":{}}"), 422, "dataset",
                 "'dataset' must be a dataset id (an integer) or name (a string), not an object");
    expect_exact(post(T, J, "{\"name\":\"t\",\"dataset\":1.5}"), 422, "dataset",
                 "'dataset' must be a dataset id (an integer) or name (a string), not a real number");
    expect_exact(post(T, J, "{\"name\":\"t\"}"), 422, "dataset",
                 "'dataset' is required: a dataset id or name (or give 'generator')");
    expect_exact(post(T, J, "{\"name\":[]}"), 422, "name", "'name' must be a string, not an array");
    json_t *l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
}
END_TEST

START_TEST(csv_errors_name_line_and_column)
{
    expect(post("/v1/datasets?name=a", "text/csv", "x,y\n1,2\n3\n"), 422, "invalid_csv",
           "line 3", NULL);
    expect(post("/v1/datasets?name=a", "text/csv", "x,y\n1,2\n\"3,4\n"), 422, "invalid_csv",
           "line 3", NULL);
    expect(post("/v1/datasets?name=a", "text/csv", "x,y\n1,\n"), 422, NULL, "line 2", NULL);
    expect(post("/v1/datasets?name=a", "text/csv", ""), 422, "empty_csv", NULL, NULL);
    expect(post("/v1/datasets?name=a", "text/csv", "x,y\n"), 422, "empty_csv", NULL, NULL);
    expect(post("/v1/datasets?name=a", "text/csv", "x,x\n1,2\n"), 422, NULL, "x", NULL);
    /* nothing was stored */
    json_t *l = h_get_json(&P, "/v1/datasets", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
}
END_TEST

START_TEST(dataset_request_errors)
{
    expect(post("/v1/datasets", "text/csv", "x\n1\n"), 422, "invalid", "name", "name");
    expect(post("/v1/datasets?name=9lives", "text/csv", "x\n1\n"), 422, "invalid", NULL, "name");
    expect(post("/v1/datasets?name=a", "application/json", "{}"), 415, "unsupported_media_type",
           "text/csv", NULL);
    expect(post("/v1/datasets?name=a&missing=maybe", "text/csv", "x\n1\n"), 422, "invalid", NULL,
           "missing");
    json_decref(h_upload(&P, "tiny", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    expect(post("/v1/datasets?name=tiny", "text/csv", "x\n1\n"), 409, "already_exists", "tiny",
           NULL);
    h_resp r = h_req(&P, "GET", "/v1/datasets/nope", NULL, NULL, 0);
    expect(r, 404, "not_found", "nope", NULL);
    expect(h_req(&P, "GET", "/v1/datasets/tiny/rows?limit=-1", NULL, NULL, 0), 422, "invalid",
           NULL, "limit");
}
END_TEST

START_TEST(task_errors_name_the_key)
{
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    const char *T = "/v1/tasks";
    const char *J = "application/json";
    expect(post(T, J, "{\"name\":"), 400, "invalid_json", "line 1", NULL);
    expect(post(T, J, "[1,2]"), 422, "invalid", NULL, NULL);
    expect(post(T, J, "{\"name\":\"t\",\"dataset\":\"so\",\"target\":\"salary\",\"colour\":1}"),
           422, "invalid", "colour", "colour");
    expect(post(T, J, "{\"name\":\"t\",\"dataset\":\"nope\",\"target\":\"salary\"}"), 422,
           "invalid", "nope", "dataset");
    expect(post(T, J, "{\"name\":\"t\",\"dataset\":\"so\",\"target\":\"wage\"}"), 422, "invalid",
           "wage", "target");
    expect(post(T, J, "{\"name\":\"t\",\"dataset\":\"so\",\"target\":\"salary\",\"kind\":\"x\"}"),
           422, "invalid", NULL, "kind");
    expect(post(T, J,
                "{\"name\":\"t\",\"dataset\":\"so\",\"target\":\"salary\",\"features\":[\"nope\"]}"),
           422, "invalid", "nope", "features[0]");
    expect(post(T, J, "{\"name\":\"t\",\"dataset\":\"so\",\"target\":\"salary\","
                      "\"kind\":\"regression\",\"class_weight\":\"balanced\"}"),
           422, "invalid", NULL, "class_weight");
    expect(post(T, "text/plain", "{}"), 415, "unsupported_media_type", NULL, NULL);
    json_t *l = h_get_json(&P, "/v1/tasks", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
}
END_TEST

START_TEST(job_spec_errors_name_the_key_path)
{
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"salary\",\"dataset\":\"so\",\"target\":\"salary\"}", 201));
    const char *J = "application/json";
    expect(post("/v1/jobs", J, "{\"tasks\":[\"salary\"]}"), 422, "invalid", "algorithm",
           "algorithm");
    expect(post("/v1/jobs", J, "{\"algorithm\":\"multitask\"}"), 422, "invalid", NULL, "tasks");
    expect(post("/v1/jobs", J, "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],\"epoch\":3}"),
           422, "invalid", "epoch", "epoch");
    expect(post("/v1/jobs", J,
                "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],\"epochs\":\"3\"}"),
           422, "invalid", "integer", "epochs");
    expect(post("/v1/jobs", J,
                "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],\"batch_size\":0}"),
           422, "invalid", NULL, "batch_size");
    expect(post("/v1/jobs", J,
                "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],"
                "\"model\":{\"trunk\":[64,32,0]}}"),
           422, "invalid", "model.trunk[2]", "model.trunk[2]");
    expect(post("/v1/jobs", J,
                "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"],\"optimizer\":{\"lr\":-1}}"),
           422, "invalid", NULL, "optimizer.lr");
    expect(post("/v1/jobs", J, "{\"algorithm\":\"multitask\",\"tasks\":[\"wage\"]}"), 422,
           "invalid", "wage", "tasks[0]");
    expect(post("/v1/jobs", J, "{\"algorithm\":\"boosting\",\"tasks\":[\"salary\"]}"), 422,
           "invalid", NULL, "algorithm");
    expect(post("/v1/jobs", J, "{\"algorithm\":\"multitask\",\"tasks\":[\"salary\"]"), 400,
           "invalid_json", "column", NULL);
    /* weights: a negative one names its key; all of them 0 leaves nothing
     * to train (one 0 among others is fine: that task is only evaluated) */
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"remote\",\"dataset\":\"so\",\"target\":\"remote\","
                            "\"kind\":\"classification\"}",
                            201));
    expect(post("/v1/jobs", J,
                "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"salary\","
                "\"weight\":-1}]}"),
           422, "invalid", "tasks[0].weight", "tasks[0].weight");
    expect(post("/v1/jobs", J,
                "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"salary\",\"weight\":0},"
                "{\"task\":\"remote\",\"weight\":0.0}]}"),
           422, "invalid", "weight 0", "tasks");
    json_t *l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
    json_decref(h_post_json(&P, "/v1/jobs",
                            "{\"algorithm\":\"multitask\",\"tasks\":[{\"task\":\"salary\","
                            "\"weight\":0},{\"task\":\"remote\",\"weight\":1}],\"epochs\":1}",
                            202));
}
END_TEST

/* The out-of-range values issue 6 names, each a 422 naming its key path:
 * epochs, lr, batch, layer sizes, ways/shots, the task count. Nothing is
 * created. */
START_TEST(out_of_range_values_name_their_key)
{
    json_decref(h_upload(&P, "so", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    json_decref(h_post_json(&P, "/v1/tasks",
                            "{\"name\":\"remote\",\"dataset\":\"so\",\"target\":\"remote\","
                            "\"kind\":\"classification\"}",
                            201));
    char many[600];
    size_t ml = (size_t)snprintf(many, sizeof many, "{\"algorithm\":\"multitask\",\"tasks\":[");
    for (int i = 0; i < 17; i++)
        ml += (size_t)snprintf(many + ml, sizeof many - ml, "%s\"remote\"", i ? "," : "");
    snprintf(many + ml, sizeof many - ml, "]}");
    static const struct {
        const char *spec, *field;
    } cases[] = {
        {"{\"algorithm\":\"multitask\",\"tasks\":[\"remote\"],\"epochs\":0}", "epochs"},
        {"{\"algorithm\":\"multitask\",\"tasks\":[\"remote\"],\"epochs\":100001}", "epochs"},
        {"{\"algorithm\":\"multitask\",\"tasks\":[\"remote\"],\"optimizer\":{\"lr\":1e9}}",
         "optimizer.lr"},
        {"{\"algorithm\":\"multitask\",\"tasks\":[\"remote\"],\"batch_size\":-5}", "batch_size"},
        {"{\"algorithm\":\"multitask\",\"tasks\":[\"remote\"],\"model\":{\"trunk\":[8,100000]}}",
         "model.trunk[1]"},
        {"{\"algorithm\":\"protonet\",\"tasks\":[\"remote\"],\"episodes\":{\"ways\":1}}",
         "episodes.ways"},
        {"{\"algorithm\":\"protonet\",\"tasks\":[\"remote\"],\"episodes\":{\"ways\":2,"
         "\"shots\":0}}",
         "episodes.shots"},
        {"{\"algorithm\":\"multitask\",\"tasks\":[]}", "tasks"},
        {NULL, "tasks"}, /* 17 tasks */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *spec = cases[i].spec ? cases[i].spec : many;
        h_resp r = h_req(&P, "POST", "/v1/jobs", "application/json", spec, strlen(spec));
        h_expect_error(&r, 422, "invalid", cases[i].field, cases[i].field);
        h_resp_free(&r);
    }
    json_t *l = h_get_json(&P, "/v1/jobs", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(l, "total")), 0);
    json_decref(l);
}
END_TEST

START_TEST(routes_methods_and_ids)
{
    expect(h_req(&P, "GET", "/v1/nothing", NULL, NULL, 0), 404, "not_found", NULL, NULL);
    expect(h_req(&P, "PUT", "/v1/datasets", NULL, NULL, 0), 405, "method_not_allowed", NULL, NULL);
    expect(h_req(&P, "GET", "/v1/jobs/42", NULL, NULL, 0), 404, "not_found", NULL, NULL);
    expect(h_req(&P, "GET", "/v1/jobs/abc", NULL, NULL, 0), 404, "not_found", NULL, NULL);
    expect(h_req(&P, "GET", "/v1/jobs/1%2F..%2F..%2Fetc/checkpoints/latest", NULL, NULL, 0), 404,
           "not_found", NULL, NULL);
    expect(h_req(&P, "GET", "/v1/jobs?state=bogus", NULL, NULL, 0), 422, "invalid", NULL, "state");
    expect(h_req(&P, "GET", "/v1/jobs/1/metrics?since=x", NULL, NULL, 0), 422, "invalid", NULL,
           "since");
    /* a value past the limit says the limit, not only "non-negative" */
    expect_exact(h_req(&P, "GET", "/v1/jobs?offset=9223372036854775807", NULL, NULL, 0), 422,
                 "offset", "'offset' must be an integer from 0 to 1099511627776");
    expect_exact(h_req(&P, "GET", "/v1/datasets/1/rows?offset=1099511627777", NULL, NULL, 0), 422,
                 "offset", "'offset' must be an integer from 0 to 1099511627776");
    h_resp edge = h_req(&P, "GET", "/v1/jobs?offset=1099511627776", NULL, NULL, 0);
    ck_assert_msg(edge.status == 200, "%ld %s", edge.status, edge.body);
    h_resp_free(&edge);
}
END_TEST

/* Found by a fresh-eyes test: a decoded %00 cut names short (so a DELETE
 * could remove another dataset), and invalid UTF-8 in a path turned the
 * error into a bodiless 503. */
START_TEST(nul_and_invalid_utf8_in_urls)
{
    json_decref(h_upload(&P, "chunky", h_src("data/stackoverflow/stackoverflow.csv"), 201));
    expect(post("/v1/datasets?name=a%00b", "text/csv", "x\n1\n"), 422, "invalid", NULL, "name");
    expect(h_req(&P, "DELETE", "/v1/datasets/chunky%00anything", NULL, NULL, 0), 404, "not_found",
           NULL, NULL);
    expect(h_req(&P, "GET", "/v1/datasets/%ff", NULL, NULL, 0), 404, "not_found", NULL, NULL);
    expect(h_req(&P, "GET", "/v1/jobs/%ff%fe", NULL, NULL, 0), 404, "not_found", NULL, NULL);
    char path[2048];
    size_t off = (size_t)snprintf(path, sizeof path, "/v1/datasets/");
    for (int i = 0; i < 300; i++)
        off += (size_t)snprintf(path + off, sizeof path - off, "%%C3%%A9");
    expect(h_req(&P, "GET", path, NULL, NULL, 0), 404, "not_found", NULL, NULL);
    /* the dataset is still there */
    json_decref(h_get_json(&P, "/v1/datasets/chunky", 200));
}
END_TEST

START_TEST(oversized_json_body_is_refused)
{
    size_t n = 2u << 20;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = 0;
    h_resp r = h_req(&P, "POST", "/v1/tasks", "application/json", big, n);
    free(big);
    expect(r, 413, "too_large", "limit", NULL);
}
END_TEST

Suite *bad_input_suite(void);
Suite *bad_input_suite(void)
{
    Suite *s = suite_create("bad_input");
    TCase *tc = tcase_create("bad_input");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, csv_errors_name_line_and_column);
    tcase_add_test(tc, messages_say_where_once);
    tcase_add_test(tc, dataset_request_errors);
    tcase_add_test(tc, task_errors_name_the_key);
    tcase_add_test(tc, job_spec_errors_name_the_key_path);
    tcase_add_test(tc, routes_methods_and_ids);
    tcase_add_test(tc, out_of_range_values_name_their_key);
    tcase_add_test(tc, oversized_json_body_is_refused);
    tcase_add_test(tc, nul_and_invalid_utf8_in_urls);
    suite_add_tcase(s, tc);
    return s;
}
