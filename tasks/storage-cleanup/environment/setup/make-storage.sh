#!/usr/bin/env bash
# /app/storage with old and new temporary/cache files (fixed mtimes), large
# sparse files around the 1 MiB boundary, names with spaces.
set -euo pipefail
export TZ=UTC
s=/app/storage
mkdir -p "$s/projects/alpha/cache" "$s/projects/beta/build/cache/deep" "$s/media/raw footage" "$s/tmp" \
  "$s/home/ann/cache" "$s/home/ann/docs" "$s/logs" "$s/keep.tmp.d"
mk() { # mk PATH SIZE DATE
  mkdir -p "$(dirname "$s/$1")"
  truncate -s "$2" "$s/$1"
  touch -d "$3" "$s/$1"
}
mk "projects/alpha/cache/obj1.o" 2000 "2024-01-10 10:00"
mk "projects/alpha/cache/obj2.o" 3000 "2024-03-05 10:00"
mk "projects/alpha/main.c" 500 "2023-05-01 09:00"
mk "projects/beta/build/cache/deep/blob.bin" 3145728 "2023-12-24 12:00"
mk "projects/beta/build/cache/index" 100 "2024-02-29 23:59"
mk "projects/beta/build/out.bin" 1048576 "2024-01-01 00:00"
mk "projects/beta/build/almost.bin" 1048575 "2024-01-01 00:00"
mk "media/raw footage/clip 01.mov" 7340032 "2023-08-01 08:00"
mk "media/raw footage/clip 02.mov" 2097152 "2024-04-01 08:00"
mk "media/raw footage/render.tmp" 5242880 "2024-04-02 08:00"
mk "media/thumb.png" 4096 "2023-08-01 08:00"
mk "tmp/session 1.tmp" 10 "2024-02-01 00:00"
mk "tmp/session 2.tmp" 10 "2024-03-10 00:00"
mk "tmp/notes.txt" 20 "2023-01-01 00:00"
mk "home/ann/cache/thumbs.db" 1572864 "2024-02-15 00:00"
mk "home/ann/docs/report.pdf" 1048577 "2022-06-01 00:00"
mk "home/ann/docs/draft.TMP" 30 "2022-06-01 00:00"
mk "home/ann/docs/old.tmp" 30 "2022-06-01 00:00"
mk "logs/app.log" 900 "2024-05-01 00:00"
mk "keep.tmp.d/readme" 12 "2021-01-01 00:00"
mk "projects/alpha/cachefile" 40 "2021-01-01 00:00"
touch -d "2024-05-01 00:00" "$s/tmp"
