/* tests/integration/main.c — runs one integration suite named on the
 * command line (so ctest shows and times each suite on its own). */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *flow_suite(void);
Suite *bad_input_suite(void);
Suite *durability_suite(void);
Suite *jobs_suite(void);
Suite *notify_suite(void);
Suite *meta_jobs_suite(void);
Suite *engine_spec_suite(void);
Suite *api_suite(void);
Suite *api_live_suite(void);
Suite *api_strict_suite(void);
Suite *csv_corpus_suite(void);
Suite *cli_suite(void);
Suite *cli_term_suite(void);
Suite *cli_upload_suite(void);
Suite *weighting_suite(void);
Suite *sampling_suite(void);
Suite *mmoe_suite(void);
Suite *datasets_suite(void);
Suite *activation_suite(void);

static const struct {
    const char *name;
    Suite *(*make)(void);
} suites[] = {
    {"flow", flow_suite},
    {"bad_input", bad_input_suite},
    {"durability", durability_suite},
    {"jobs", jobs_suite},
    {"notify", notify_suite},
    {"meta", meta_jobs_suite},
    {"engine_spec", engine_spec_suite},
    {"api", api_suite},
    {"api_live", api_live_suite},
    {"api_strict", api_strict_suite},
    {"csv_corpus", csv_corpus_suite},
    {"cli", cli_suite},
    {"cli_term", cli_term_suite},
    {"cli_upload", cli_upload_suite},
    {"weighting", weighting_suite},
    {"sampling", sampling_suite},
    {"mmoe", mmoe_suite},
    {"datasets", datasets_suite},
    {"activation", activation_suite},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SUITE\n", argv[0]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (strcmp(argv[1], suites[i].name) != 0)
            continue;
        SRunner *sr = srunner_create(suites[i].make());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        curl_global_cleanup();
        return failed ? 1 : 0;
    }
    fprintf(stderr, "no suite '%s'\n", argv[1]);
    return 2;
}
