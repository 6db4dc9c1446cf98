/* cpu.h - which SIMD code path the tensor kernels run on this machine.
 *
 * The build uses no -march flags, so one binary runs on any x86-64. Kernels
 * that need AVX+FMA+F16C live in functions compiled with
 * __attribute__((target("avx,fma,f16c"))) and are only called when
 * preft_cpu_path() says the CPU has all three. AVX2 and AVX-512 are never
 * required (the machines we target have AVX1 + FMA + F16C only).
 *
 * The choice is made once (first call) and cached. Tests and benchmarks may
 * force the portable plain-C path to check it against the reference.
 */
#ifndef PREFT_TENSOR_CPU_H
#define PREFT_TENSOR_CPU_H

#include <stdbool.h>

typedef enum {
  PREFT_CPU_PORTABLE = 0, /* plain C, whatever the compiler makes of it */
  PREFT_CPU_AVX_FMA = 1,  /* AVX (256-bit float) + FMA3 + F16C */
} preft_cpu_path_kind;

/* The path kernels take now: the detected one, unless forced portable.
 * Cheap (a relaxed atomic load after the first call); thread-safe. */
preft_cpu_path_kind preft_cpu_path(void);

/* What the CPU supports, ignoring any forcing. */
preft_cpu_path_kind preft_cpu_detected(void);

/* true: every kernel takes the portable path from now on; false: back to
 * the detected path. Not meant to be flipped while kernels run. */
void preft_cpu_force_portable(bool on);

/* "avx+fma+f16c" or "portable" (static string). */
const char *preft_cpu_path_name(preft_cpu_path_kind k);

#endif
