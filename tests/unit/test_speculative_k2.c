/* test_speculative_k2.c - the chi-square test of test_speculative.c at the
 * second drafted position (a draft model drafting k = 2 in the engine,
 * 3000 seeded requests), as its own program so that it has its own time
 * limit (it is the slowest of the three under the sanitizers). */
#define SPEC_SECOND_POSITION_GROUP
#include "test_speculative.c" /* NOLINT(bugprone-suspicious-include) */
