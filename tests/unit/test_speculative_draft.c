/* test_speculative_draft.c - the draft model's tests of test_speculative.c
 * (speculation by a draft model: greedy tokens unchanged in the engine and
 * in preft_generate, also under preemption; the sampled distribution kept;
 * a draft model of another vocabulary, bos or eos refused; the catch-up
 * in chunks; generate with a sampled draft), as their own program so that
 * they have their own time limit. */
#define SPEC_DRAFT_MODEL_GROUP
#include "test_speculative.c" /* NOLINT(bugprone-suspicious-include) */
