/* cpu.h - which SIMD code path the tensor kernels run on this machine.
 *
 * The build uses no -march flags, so one binary runs on any x86-64. Kernels
 * for a path live in functions compiled with a target attribute naming
 * exactly that path's extensions and are only called when preft_cpu_path()
 * says the CPU has them. The paths are ordered: each one's CPU also has
 * every lower path's extensions, so "path >= PREFT_CPU_AVX_FMA" asks for
 * AVX+FMA+F16C.
 *
 *   portable      plain C, whatever the compiler makes of it
 *   avx+fma+f16c  256-bit float, FMA3, F16 conversion (the baseline the
 *                 project targets: no 256-bit integer instructions)
 *   avx2          + 256-bit integer ops: BF16 widening in two instructions
 *   avx512-bf16   + AVX-512 F/BW/VL/BF16: vdpbf16ps, used for BF16 weights
 *                 only when the matmul precision allows (gemm.h)
 *
 * The choice is made once (first call) and cached. It can be capped: by the
 * environment variable PREFT_CPU=portable|avx|avx2|avx512 (read once, for
 * benchmarking what a smaller CPU gets) and by preft_cpu_limit (tests run
 * every path the machine has against the reference).
 */
#ifndef PREFT_TENSOR_CPU_H
#define PREFT_TENSOR_CPU_H

typedef enum {
  PREFT_CPU_PORTABLE = 0,
  PREFT_CPU_AVX_FMA = 1,
  PREFT_CPU_AVX2 = 2,
  PREFT_CPU_AVX512_BF16 = 3,
  PREFT_CPU_N_PATHS
} preft_cpu_path_kind;

/* The path kernels take now: the detected one, capped by PREFT_CPU and by
 * preft_cpu_limit. Cheap (relaxed atomic loads after the first call). */
preft_cpu_path_kind preft_cpu_path(void);

/* The best path the CPU supports, ignoring every cap. */
preft_cpu_path_kind preft_cpu_detected(void);

/* Caps the path at `most` (PREFT_CPU_N_PATHS - 1 lifts the cap; PREFT_CPU
 * still applies). Not meant to be changed while kernels run. */
void preft_cpu_limit(preft_cpu_path_kind most);

/* Int8 dot-product extensions beside the path order (the quantized kernels,
 * quant_kern.h): AVX-VNNI (vpdpbusd on ymm, VEX) and AVX512-VNNI with
 * AVX512-VL (vpdpbusd, EVEX). True only when the CPU and OS support them;
 * not capped by PREFT_CPU (preft_qgemm_limit caps those kernels). */
int preft_cpu_has_avx_vnni(void);
int preft_cpu_has_avx512_vnni(void);

/* The L2 cache of one core in bytes, as the C library reports it (0 when
 * it does not): the packed products size their blocks by it (gemm.c). */
int preft_cpu_l2_bytes(void);

/* "portable", "avx+fma+f16c", "avx2" or "avx512-bf16" (static string). */
const char *preft_cpu_path_name(preft_cpu_path_kind k);

/* Parses a PREFT_CPU value ("portable", "avx", "avx2", "avx512"); -1 if
 * unknown. */
int preft_cpu_path_parse(const char *s);

#endif
