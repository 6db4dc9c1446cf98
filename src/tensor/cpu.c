/* cpu.c - run-time selection of the SIMD code path (see cpu.h). */
#include "tensor/cpu.h"

#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* -1 until detected; then a preft_cpu_path_kind. */
static atomic_int detected = -1;
static atomic_int env_cap = -1; /* -1 until PREFT_CPU was read */
static atomic_int limit = PREFT_CPU_N_PATHS - 1;

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
/* F16C from CPUID leaf 1 (clang 14's __builtin_cpu_supports does not know "f16c"). */
static int has_f16c(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static int detect(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  __builtin_cpu_init();
  /* __builtin_cpu_supports("avx") and ("avx512f") also check that the OS
   * saves the YMM / ZMM state (XCR0), so a true answer means usable. */
  if (!(__builtin_cpu_supports("avx") && __builtin_cpu_supports("fma") && has_f16c()))
    return PREFT_CPU_PORTABLE;
  if (!__builtin_cpu_supports("avx2")) return PREFT_CPU_AVX_FMA;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16"))
    return PREFT_CPU_AVX512_BF16;
  return PREFT_CPU_AVX2;
#else
  return PREFT_CPU_PORTABLE;
#endif
}

/* -1 until asked; a race only asks twice */
static int cached(atomic_int *slot, int (*ask)(void)) {
  int v = atomic_load_explicit(slot, memory_order_relaxed);
  if (v < 0) {
    v = ask();
    atomic_store_explicit(slot, v, memory_order_relaxed);
  }
  return v;
}

preft_cpu_path_kind preft_cpu_detected(void) { return (preft_cpu_path_kind)cached(&detected, detect); }

int preft_cpu_path_parse(const char *s) {
  static const char *const names[] = {"portable", "avx", "avx2", "avx512"};
  for (int i = 0; i < PREFT_CPU_N_PATHS; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

static int read_env_cap(void) {
  int cap = atomic_load_explicit(&env_cap, memory_order_relaxed);
  if (cap >= 0) return cap;
  const char *s = getenv("PREFT_CPU");
  cap = PREFT_CPU_N_PATHS - 1;
  if (s && *s) {
    int p = preft_cpu_path_parse(s);
    if (p < 0)
      fprintf(stderr, "preft: ignoring PREFT_CPU=%s (expected portable, avx, avx2 or avx512)\n", s);
    else
      cap = p;
  }
  atomic_store_explicit(&env_cap, cap, memory_order_relaxed);
  return cap;
}

preft_cpu_path_kind preft_cpu_path(void) {
  int p = preft_cpu_detected(), cap = read_env_cap(),
      lim = atomic_load_explicit(&limit, memory_order_relaxed);
  if (p > cap) p = cap;
  if (p > lim) p = lim;
  return (preft_cpu_path_kind)p;
}

void preft_cpu_limit(preft_cpu_path_kind most) { atomic_store(&limit, (int)most); }

const char *preft_cpu_path_name(preft_cpu_path_kind k) {
  switch (k) {
    case PREFT_CPU_AVX_FMA:
      return "avx+fma+f16c";
    case PREFT_CPU_AVX2:
      return "avx2";
    case PREFT_CPU_AVX512_BF16:
      return "avx512-bf16";
    default:
      return "portable";
  }
}

/* CPUID traps to the hypervisor in a VM (microseconds), and the quantized
 * products ask for every call: each answer is read once and kept. */
static int has_avx_vnni(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  unsigned a, b, c, d;
  if (preft_cpu_detected() < PREFT_CPU_AVX2) return 0;
  /* CPUID.(EAX=7, ECX=1):EAX bit 4 */
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
#else
  return 0;
#endif
}

static int has_avx512_vnni(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  unsigned a, b, c, d;
  __builtin_cpu_init();
  if (preft_cpu_detected() < PREFT_CPU_AVX2 || !__builtin_cpu_supports("avx512f") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512bw"))
    return 0;
  /* CPUID.(EAX=7, ECX=0):ECX bit 11 */
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 11));
#else
  return 0;
#endif
}

int preft_cpu_has_avx_vnni(void) {
  static atomic_int answer = -1;
  return cached(&answer, has_avx_vnni);
}

int preft_cpu_has_avx512_vnni(void) {
  static atomic_int answer = -1;
  return cached(&answer, has_avx512_vnni);
}

static int l2_bytes(void) {
#ifdef _SC_LEVEL2_CACHE_SIZE
  long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
  return v > 0 && v <= (1L << 30) ? (int)v : 0;
#else
  return 0;
#endif
}

int preft_cpu_l2_bytes(void) {
  static atomic_int answer = -1;
  return cached(&answer, l2_bytes);
}
