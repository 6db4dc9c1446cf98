/* jinja_arith.c - Jinja arithmetic on numbers, as Python does it but with
 * 64-bit integers: int op int stays an int computed without going through
 * double (so 9007199254740993 + 0 is exact), and a result that does not fit
 * in int64 (Python would grow a big integer) fails with a template error
 * naming the line instead of wrapping or trapping (INT64_MIN // -1 is a
 * SIGFPE on x86). Floats follow IEEE double as Python's float does. */
#include <math.h>
#include <string.h>

#include "text/jinja_int.h"

bool preft_jv_is_intlike(const jv *v) { return v->t == V_INT || v->t == V_BOOL; }

int64_t preft_jv_int_of(const jv *v) { return v->t == V_INT ? v->i : v->t == V_BOOL ? v->b : 0; }

/* d truncated toward zero as an int64 (Python int(d)); fails on NaN,
 * infinity and values outside int64, where C's cast is undefined. */
int64_t preft_jv_float_to_int(jeval *E, double d, int line) {
  if (isnan(d) || isinf(d))
    preft_jfail(E->c, line, "cannot convert float %s to an integer", isnan(d) ? "nan" : "inf");
  /* 2^63 is exact as a double; every double in (-2^63 - 1, 2^63) truncates into range */
  if (!(d > -9223372036854775808.0 - 1.0 && d < 9223372036854775808.0))
    preft_jfail(E->c, line, "integer overflow: %g does not fit in a 64-bit integer", d);
  return (int64_t)d;
}

_Noreturn static void overflow(jeval *E, int line, const char *op, int64_t x, int64_t y) {
  preft_jfail(E->c, line,
              "integer overflow: %lld %s %lld does not fit in a 64-bit integer (preft has no big integers)",
              (long long)x, op, (long long)y);
}

/* x ** y for y >= 0 by squaring, failing on overflow. */
static int64_t int_pow(jeval *E, int64_t x, int64_t y, int line) {
  int64_t r = 1, base = x, e = y;
  while (e > 0) {
    if ((e & 1) && __builtin_mul_overflow(r, base, &r)) overflow(E, line, "**", x, y);
    e >>= 1;
    if (e > 0 && __builtin_mul_overflow(base, base, &base)) overflow(E, line, "**", x, y);
  }
  return r;
}

/* Integer +, -, *, //, %, ** with Python's floor semantics; fails on
 * division by zero and on a result outside int64. */
static jv *int_arith(jeval *E, const char *op, int64_t x, int64_t y, int line) {
  int64_t r;
  if (!strcmp(op, "+")) {
    if (__builtin_add_overflow(x, y, &r)) overflow(E, line, op, x, y);
    return preft_jv_int(E, r);
  }
  if (!strcmp(op, "-")) {
    if (__builtin_sub_overflow(x, y, &r)) overflow(E, line, op, x, y);
    return preft_jv_int(E, r);
  }
  if (!strcmp(op, "*")) {
    if (__builtin_mul_overflow(x, y, &r)) overflow(E, line, op, x, y);
    return preft_jv_int(E, r);
  }
  if (!strcmp(op, "//") || !strcmp(op, "%")) {
    if (y == 0) preft_jfail(E->c, line, "integer division or modulo by zero");
    if (y == -1) { /* the one quotient that overflows: INT64_MIN // -1 */
      if (op[0] == '%') return preft_jv_int(E, 0);
      if (__builtin_sub_overflow((int64_t)0, x, &r)) overflow(E, line, op, x, y);
      return preft_jv_int(E, r);
    }
    int64_t d = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) d--, m += y; /* Python floor semantics */
    return preft_jv_int(E, op[0] == '%' ? m : d);
  }
  if (!strcmp(op, "**")) {
    if (y < 0) {
      if (x == 0) preft_jfail(E->c, line, "0 cannot be raised to a negative power");
      return preft_jv_float(E, pow((double)x, (double)y));
    }
    return preft_jv_int(E, int_pow(E, x, y, line));
  }
  preft_jfail(E->c, line, "unsupported operator '%s'", op);
}

/* Float arithmetic as Python's float: / and // and % by zero fail. */
static jv *float_arith(jeval *E, const char *op, double x, double y, int line) {
  if (!strcmp(op, "+")) return preft_jv_float(E, x + y);
  if (!strcmp(op, "-")) return preft_jv_float(E, x - y);
  if (!strcmp(op, "*")) return preft_jv_float(E, x * y);
  if (!strcmp(op, "/")) {
    if (y == 0) preft_jfail(E->c, line, "division by zero");
    return preft_jv_float(E, x / y);
  }
  if (!strcmp(op, "//") || !strcmp(op, "%")) {
    if (y == 0) preft_jfail(E->c, line, "float division or modulo by zero");
    double d = floor(x / y);
    return preft_jv_float(E, op[0] == '%' ? x - d * y : d);
  }
  if (!strcmp(op, "**")) {
    if (x == 0 && y < 0) preft_jfail(E->c, line, "0.0 cannot be raised to a negative power");
    return preft_jv_float(E, pow(x, y));
  }
  preft_jfail(E->c, line, "unsupported operator '%s'", op);
}

jv *preft_jinja_arith(jeval *E, const char *op, const jv *a, const jv *b, int line) {
  if (!preft_jv_is_num(a) || !preft_jv_is_num(b))
    preft_jfail(E->c, line, "unsupported operand types for %s: %s and %s", op, preft_jv_type_name(a),
                preft_jv_type_name(b));
  if (preft_jv_is_intlike(a) && preft_jv_is_intlike(b)) {
    int64_t x = preft_jv_int_of(a), y = preft_jv_int_of(b);
    if (!strcmp(op, "/")) {
      if (y == 0) preft_jfail(E->c, line, "division by zero");
      return preft_jv_float(E, (double)x / (double)y);
    }
    return int_arith(E, op, x, y, line);
  }
  return float_arith(E, op, preft_jv_num(a), preft_jv_num(b), line);
}

jv *preft_jinja_negate(jeval *E, const jv *v, int line) {
  if (v->t == V_FLOAT) return preft_jv_float(E, -v->f);
  int64_t x = preft_jv_int_of(v), r;
  if (__builtin_sub_overflow((int64_t)0, x, &r))
    preft_jfail(E->c, line, "integer overflow: -(%lld) does not fit in a 64-bit integer", (long long)x);
  return preft_jv_int(E, r);
}
