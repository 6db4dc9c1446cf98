/* grpo.h - reinforcement learning of an adapter with GRPO (group relative
 * policy optimisation, DeepSeekMath) and verifiable rewards: `preft train rl`.
 *
 * One RL step:
 *   rollout  P prompts of the task (prompt numbers step·P .. step·P+P-1 of
 *            the task's stream seeded by --seed: training problems of the
 *            built-in tasks for seeds below PREFT_RL_HELDOUT_SEED), G samples each, through the
 *            serving engine with the current adapter loaded from its saved
 *            files in the mode it will be served (grpo_rollout.c); every
 *            sample is seeded by (seed, step, prompt, sample), and records its
 *            completion token ids and the rollout policy's log-probability of
 *            each (the engine's, of the unmodified distribution);
 *   reward   the task's verifier or a reward command (src/rl/rl_task.h);
 *   update   advantages normalised within each group; then `epochs` AdamW
 *            steps on the clipped policy-gradient loss below (grpo_update.c,
 *            grpo_loss.c).
 *
 * Loss (per RL step, over the S samples of groups whose rewards differ):
 *   A_i     = (r_i − mean(r_group)) / std(r_group)     (sample std, n − 1)
 *   ρ_t     = exp(logπ(o_t) − logπ_rollout(o_t))
 *   k3_t    = exp(logπ_base(o_t) − logπ(o_t)) − (logπ_base(o_t) − logπ(o_t)) − 1
 *   ℓ_t     = −min(ρ_t·A_i, clip(ρ_t, 1 − ε, 1 + ε)·A_i) + β·k3_t
 *   loss    = (1/S) Σ_i (1/|o_i|) Σ_t ℓ_t          (completion tokens only)
 * π is the adapted model as it is served (prefill-only: completion rows run
 * the base weights and see the adapter through the prompt's keys and
 * values); π_base is the same weights without the adapter (no second copy);
 * log-probabilities are of the model's unmodified (temperature 1)
 * distribution, whatever temperature and top-p the rollouts sample with.
 * log π_rollout is taken from the training forward of the first epoch,
 * which runs the parameters the rollouts ran (so its ratio is exactly 1):
 * the engine's own log-probabilities, recorded with every sample, agree to
 * float rounding (tested; the gap is logged) but their last bits depend on
 * how the engine happened to batch the requests, and a resumed run must
 * repeat the uninterrupted one bit for bit.
 * A group whose rewards are all equal (std < 1e-6) has no advantage and
 * contributes nothing, to the loss or the KL term; it is counted.
 *
 * Legend: P prompts per step, G samples per prompt, S samples in the loss.
 */
#ifndef PREFT_RL_GRPO_H
#define PREFT_RL_GRPO_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "preft/engine.h"
#include "preft/tokenizer.h"
#include "rl/rl_task.h"
#include "train/train_dist.h"
#include "train/train_model.h"

/* ---- one sampled completion, and a batch of them ----------------------------- */

typedef struct preft_grpo_sample {
  int *ids;           /* [n] prompt then completion token ids */
  int n;              /* prompt_len + completion tokens */
  int prompt_len;     /* tokens of the prompt */
  float *engine_logp; /* [n − prompt_len] the engine's log-probability of each sampled token */
  float *old_logp;    /* [n − prompt_len] log π_rollout of each (NULL until the first epoch sets it) */
  float *ref_logp;    /* [n − prompt_len] log π_base of each (NULL until computed) */
  char *text;         /* the completion, decoded */
  double reward, adv;
} preft_grpo_sample;

typedef struct preft_grpo_batch {
  preft_grpo_sample *s; /* [P·G], group g is s[g·G .. g·G+G-1] */
  int n, group;
  preft_rl_prompt *prompts; /* [P] */
  int n_prompts;
} preft_grpo_batch;

void preft_grpo_batch_free(preft_grpo_batch *b);

/* ---- the loss (grpo_loss.c) ------------------------------------------------------ */

/* Fills every sample's adv from the rewards, group by group; groups whose
 * rewards are all equal get 0. Returns how many groups were all equal;
 * *mean, *std: of all rewards (population std). */
int preft_grpo_advantages(preft_grpo_batch *b, double *mean, double *std);
/* True when sample i belongs to a group that contributes (not all equal). */
bool preft_grpo_sample_counts(const preft_grpo_batch *b, int i);

typedef struct preft_grpo_loss_opts {
  double clip_eps; /* ε of the ratio clip */
  double kl_coef;  /* β; 0: no KL term (the KL is still measured when ref_logp is set) */
} preft_grpo_loss_opts;

/* ℓ_t of one completion token and d ℓ_t / d logπ(o_t). ref_logp is used
 * only when kl_coef > 0. *clipped: the clip removed the policy gradient. */
double preft_grpo_token_loss(const preft_grpo_loss_opts *o, double logp, double old_logp, double ref_logp,
                             double adv, double *dlogp, bool *clipped);
/* k3 estimate of KL(π || π_base) at one token. */
double preft_grpo_k3(double logp, double ref_logp);

/* ---- the update (grpo_update.c) ------------------------------------------------------- */

typedef struct preft_grpo_update_stats {
  double loss;      /* the GRPO loss of the batch */
  double kl;        /* mean k3 over the counted completion tokens (NaN without ref_logp) */
  double clip_frac; /* fraction of counted tokens whose gradient the clip removed */
  double logp_gap;  /* largest |engine log-probability − training log-probability| (set_old) */
  int64_t rows;     /* token rows run (forward and backward) */
  int64_t tokens;   /* counted completion tokens */
  int samples;      /* S */
} preft_grpo_update_stats;

/* Activations and batch buffers for passes over groups of samples, grown
 * as needed. micro: samples per forward/backward pass. */
typedef struct preft_grpo_updater {
  const preft_train_model *tm;
  preft_train_adapter *ad;
  preft_pool *pool;
  int micro;
  preft_train_acts acts;
  bool acts_ready;
  int acts_rows, acts_len;
  preft_train_batch tb;
  int *row_sample, *row_tok; /* [rows] sample and completion index of each batch row */
  int cap_rows;
  int counted_total; /* > 0: S of the loss over every rank's samples (data-parallel); 0: this batch's */
} preft_grpo_updater;

void preft_grpo_updater_init(preft_grpo_updater *u, const preft_train_model *tm, preft_train_adapter *ad,
                             preft_pool *pool, int micro);
void preft_grpo_updater_free(preft_grpo_updater *u);
/* log π_base of every completion token of the counted samples into their
 * ref_logp (the adapter-free forward of the same weights). */
int preft_grpo_ref_logprobs(preft_grpo_updater *u, preft_grpo_batch *b, preft_error *err);
/* Zeroes the adapter's gradients and accumulates d loss / d θ of the batch
 * (advantages already set); fills *st. No sample counts: gradients stay 0.
 * set_old (the first epoch): every counted sample's old_logp is set to the
 * forward's own log-probabilities first (π_rollout is the current adapter). */
int preft_grpo_gradient(preft_grpo_updater *u, preft_grpo_batch *b, const preft_grpo_loss_opts *o,
                        bool set_old, preft_grpo_update_stats *st, preft_error *err);

/* ---- rollouts (grpo_rollout.c) ---------------------------------------------------------- */

typedef struct preft_grpo_rollout_opts {
  int group;          /* G */
  int max_new_tokens; /* per completion */
  float temperature;  /* 0: greedy */
  float top_p;        /* 1: off */
  uint64_t seed;      /* samples are seeded by (seed, step, prompt, sample) */
  int64_t step;       /* which RL step (seeds) */
  int first_sample; /* the number in the step of the batch's first sample (a rank's share: its first prompt x
                       G) */
  const char *adapter; /* registered engine name; NULL: the base model */
  int adapter_mode;    /* preft_adapter_mode, or -1: the adapter's */
  const int *stop_ids; /* more ids that end a completion (newline tokens), kept as its last */
  int n_stop_ids;
} preft_grpo_rollout_opts;

/* Generates G completions of each of the n prompts (token ids
 * prompt_ids[p][0..prompt_lens[p])) through the engine, all submitted at
 * once so that the engine batches them, and fills b's samples: ids,
 * engine_logp, and text decoded by tok (NULL: no text). b->prompts is left to
 * the caller. Stops at an EOS id of the model or the tokenizer (kept as the
 * last completion token), or after max_new_tokens. */
int preft_grpo_rollout(preft_engine *e, const preft_tokenizer *tok, int *const *prompt_ids,
                       const int *prompt_lens, int n, const preft_grpo_rollout_opts *o, preft_grpo_batch *b,
                       preft_error *err);
/* The ids of every token whose text holds a newline (heap, caller frees):
 * stop ids for completions that are one line. Returns the count. */
int preft_grpo_newline_ids(const preft_tokenizer *tok, int **ids);
/* Encodes the prompts' text with the tokenizer's special tokens: ids[p]
 * (heap, caller frees each and the array), lens[p]. */
int preft_grpo_encode_prompts(const preft_tokenizer *tok, const preft_rl_prompt *prompts, int n, int ***ids,
                              int **lens, preft_error *err);

/* ---- the loop (grpo.c) ------------------------------------------------------------------- */

/* Columns of a row of the RL history (doubles; kept in checkpoint.bin). */
enum {
  PREFT_RL_STEP,
  PREFT_RL_REWARD_MEAN,
  PREFT_RL_REWARD_STD,
  PREFT_RL_KL,
  PREFT_RL_LOSS,
  PREFT_RL_GRAD_NORM,
  PREFT_RL_EQUAL_GROUPS,
  PREFT_RL_CLIP_FRAC,
  PREFT_RL_COMPLETION_TOKENS, /* mean completion length */
  PREFT_RL_ROLLOUT_TPS,       /* generated tokens per second of the rollout */
  PREFT_RL_UPDATE_TPS,        /* token rows per second of the update (forward + backward, every epoch) */
  PREFT_RL_ROLLOUT_S,
  PREFT_RL_REWARD_S,
  PREFT_RL_UPDATE_S,
  PREFT_RL_EVAL_ACCURACY, /* NaN: not evaluated at this step */
  PREFT_RL_LOGP_GAP,      /* largest |engine − training| log-probability of a sampled token */
  PREFT_RL_ROLLOUT_CPU_S, /* CPU seconds of the process in the rollout (all threads) */
  PREFT_RL_UPDATE_CPU_S,  /* and in the update */
  PREFT_RL_ELAPSED_S,
  PREFT_RL_COLS
};

typedef struct preft_grpo_opts {
  int64_t steps;
  int prompts_per_step, group, epochs, micro_batch, max_new_tokens;
  double lr, min_lr_frac, weight_decay, clip, beta1, beta2, eps;
  int64_t warmup;
  preft_grpo_loss_opts loss;
  float temperature, top_p;
  uint64_t seed;
  int threads;
  size_t kv_cache_mb;
  int64_t save_every, eval_every; /* 0: only at the end (save) / never (eval) */
  int eval_n;                     /* held-out prompts of the in-loop evaluation */
  bool stop_newline;              /* a completion ends with its first line */
  int64_t stop_after;             /* tests: stop after this step, as if interrupted (0: never) */
  bool resume, quiet;
  const char *out_dir, *base_name;
  const preft_train_comm *comm; /* NULL: one process; else data-parallel over its ranks (below) */
} preft_grpo_opts;

/* Defaults: P 16, G 8, 1 epoch, micro 16, 24 new tokens, lr 1e-3 (the CLI
 * picks per method), constant rate, clip 1, ε 0.2, β 0, temperature 1,
 * top-p 1, eval_n 64. */
void preft_grpo_opts_default(preft_grpo_opts *o);

typedef struct preft_grpo_result {
  int64_t steps;
  double seconds;
  double *hist; /* [n_hist][PREFT_RL_COLS], caller frees */
  int64_t n_hist;
} preft_grpo_result;

/* Trains ad (on the frozen tm) with GRPO on prompts of task scored by rw.
 * Over the ranks of o->comm (every rank calls it alike): each rank rolls
 * out and scores its contiguous share of the step's P prompts
 * (preft_dist_share; samples keep the seeds of their place in the whole
 * step), computes its groups' advantages and gradient with S summed over
 * the ranks, and one sum of the adapter's flat gradient buffer per
 * optimizer step gives every rank the one-process gradient; the statistics
 * are summed likewise, and only rank 0 evaluates and writes OUT.
 * Writes into out_dir the adapter (every save_every steps and at the end),
 * checkpoint.bin (the adapter, AdamW state and the RL history: --resume
 * continues exactly), rl_log.csv and reward.svg. A NaN loss or gradient, a
 * failed rollout or a failed reward stops the run with an error naming the
 * step; the last checkpoint stays good. */
int preft_grpo_train(preft_train_model *tm, preft_train_adapter *ad, const preft_tokenizer *tok,
                     const preft_rl_task *task, preft_rl_rewarder *rw, const preft_grpo_opts *o,
                     preft_grpo_result *res, preft_error *err);

/* Greedy accuracy of the engine's model (adapter: a registered name, or
 * NULL) on prompts [0, n) of task's stream under seed (built-in tasks: a
 * seed >= PREFT_RL_HELDOUT_SEED draws held-out problems only), stopping at
 * a newline when stop_newline: rewards of rw, *accuracy = share of rewards
 * >= 1 (a verifier's 1.0), *mean_reward. */
int preft_grpo_evaluate(preft_engine *e, const preft_tokenizer *tok, const preft_rl_task *task,
                        preft_rl_rewarder *rw, const char *adapter, int adapter_mode, uint64_t seed, int n,
                        int max_new_tokens, bool stop_newline, double *accuracy, double *mean_reward,
                        preft_error *err);

#endif
