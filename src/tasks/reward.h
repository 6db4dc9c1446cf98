/* reward.h - the reward a task's verifier left in /logs/verifier.
 *
 * reward.txt holds one number; reward.json a flat object of numbers (the
 * reward is its "reward" key, else the mean of its values). reward.txt wins
 * when both exist. An empty, missing or unparsable reward, or one that is
 * not finite, is reward 0 with the reason recorded; reading never fails.
 *
 *   preft_reward r;
 *   preft_reward_read("jobs/j/hello__1/verifier", &r);
 *   printf("%g %s\n", r.reward, r.ok ? "" : r.reason);
 *   preft_reward_clear(&r);
 */
#ifndef PREFT_TASKS_REWARD_H
#define PREFT_TASKS_REWARD_H

#include <stdbool.h>

typedef struct preft_reward {
  double reward;
  bool ok;              /* false: reward is 0 because of `reason` */
  char source[16];      /* "reward.txt", "reward.json" or "" */
  char reason[256];     /* why the reward is 0 when !ok */
  struct cJSON *values; /* reward.json's object (NULL otherwise) */
} preft_reward;

void preft_reward_read(const char *verifier_dir, preft_reward *out);
/* Reads the text of reward.txt (exposed for tests). */
void preft_reward_from_txt(const char *text, preft_reward *out);
/* Reads the text of reward.json (exposed for tests). */
void preft_reward_from_json(const char *text, preft_reward *out);
void preft_reward_clear(preft_reward *r);

#endif
