/* version.c - the library's version string (preft/preft.h). */
#include "preft/preft.h"

const char *preft_version(void) { return PREFT_VERSION_STRING; }
