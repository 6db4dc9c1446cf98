#!/bin/sh
# Writes version.h from the VERSION file to standard output.
printf '#define APP_VERSION "%s"\n' "$(cat VERSION)"
