#ifndef IO_H
#define IO_H
#include <stddef.h>
#include <stdio.h>

/* Reads one number per line from f (blank lines skipped) into a growing
 * array; returns it (caller frees) and its length in *n. */
double *read_numbers(FILE *f, size_t *n);
#endif
