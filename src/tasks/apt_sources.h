/* apt_sources.h - the Debian mirror the host's apt uses, read from
 * /etc/apt/sources.list and sources.list.d/ (one-line `.list` files and
 * deb822 `.sources` files), for debootstrapping a clean base from it. */
#ifndef PREFT_TASKS_APT_SOURCES_H
#define PREFT_TASKS_APT_SOURCES_H

#include <stdbool.h>
#include <stddef.h>

#include "preft/base.h"

typedef struct preft_apt_source {
  bool deb_src; /* a deb-src line (sources, not binaries) */
  char *uri;    /* http://deb.debian.org/debian */
  char *suite;  /* bookworm, bookworm-updates, stable/updates, ./ */
  char **components;
  int n_components;
  char *file; /* where it came from, and its line */
  int line;
} preft_apt_source;

typedef struct preft_apt_sources {
  preft_apt_source *v;
  int n;
} preft_apt_sources;

/* One-line format: `deb [opt=val ...] URI SUITE [COMPONENT...]`, comments
 * from '#'. Appends to out; errors name NAME:LINE. */
int preft_apt_sources_parse_list(const char *text, size_t len, const char *name, preft_apt_sources *out,
                                 preft_error *err);
/* deb822 format: paragraphs of Types, URIs, Suites, Components (and
 * Enabled: no), each expanded to one entry per type, URI and suite. */
int preft_apt_sources_parse_deb822(const char *text, size_t len, const char *name, preft_apt_sources *out,
                                   preft_error *err);
/* Reads ROOT/etc/apt/sources.list and ROOT/etc/apt/sources.list.d/
 * (*.list, *.sources; other names are skipped as apt skips them). */
int preft_apt_sources_load(const char *root, preft_apt_sources *out, preft_error *err);
/* The mirror and suite to debootstrap from: the first binary entry whose
 * URI's path ends in /debian and whose suite is a release (no "-updates",
 * "-security", "-backports"; not "./") with component main. Heap strings. */
int preft_apt_sources_debian_mirror(const preft_apt_sources *s, char **uri, char **suite, preft_error *err);
void preft_apt_sources_free(preft_apt_sources *s);

#endif
