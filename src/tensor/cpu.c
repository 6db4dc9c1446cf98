/* cpu.c - run-time selection of the SIMD code path (see cpu.h). */
#include "tensor/cpu.h"

#include <stdatomic.h>

/* -1 until detected; then a preft_cpu_path_kind. */
static atomic_int detected = -1;
static atomic_bool forced_portable = false;

static int detect(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  __builtin_cpu_init();
  /* __builtin_cpu_supports("avx") also checks that the OS saves the YMM
   * state (OSXSAVE/XCR0), so a true answer means the registers are usable. */
  if (__builtin_cpu_supports("avx") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return PREFT_CPU_AVX_FMA;
#endif
  return PREFT_CPU_PORTABLE;
}

preft_cpu_path_kind preft_cpu_detected(void) {
  int d = atomic_load_explicit(&detected, memory_order_relaxed);
  if (d < 0) {
    d = detect(); /* idempotent: a race only detects twice */
    atomic_store_explicit(&detected, d, memory_order_relaxed);
  }
  return (preft_cpu_path_kind)d;
}

preft_cpu_path_kind preft_cpu_path(void) {
  if (atomic_load_explicit(&forced_portable, memory_order_relaxed)) return PREFT_CPU_PORTABLE;
  return preft_cpu_detected();
}

void preft_cpu_force_portable(bool on) { atomic_store(&forced_portable, on); }

const char *preft_cpu_path_name(preft_cpu_path_kind k) {
  return k == PREFT_CPU_AVX_FMA ? "avx+fma+f16c" : "portable";
}
