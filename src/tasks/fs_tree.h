/* fs_tree.h - whole folder trees: copy (keeping modes, owners, symlinks and
 * times) and remove, without following symlinks out of the tree. The *_at
 * forms work from open directory descriptors, so a copy can write into a
 * folder of another root (a sandbox's, handed over as a descriptor): below
 * it, names are taken one at a time and never followed as symlinks, and
 * owners, modes and times are set through descriptors. */
#ifndef PREFT_TASKS_FS_TREE_H
#define PREFT_TASKS_FS_TREE_H

#include <stdbool.h>
#include <stdint.h>

#include "preft/base.h"

/* Copies src (a file, symlink or folder) to dst; dst's parent must exist.
 * An existing folder at dst is merged into; existing files are replaced. */
int preft_fs_copy(const char *src, const char *dst, preft_error *err);
/* Same from (src_dirfd, src_name) to (dst_dirfd, dst_name); names may be
 * relative to the descriptors or absolute. */
int preft_fs_copy_at(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name,
                     preft_error *err);
/* Removes path and everything under it (not an error when missing). Does
 * not cross into other mounted file systems: a mount point left inside is
 * an error naming it. */
int preft_fs_remove(const char *path, preft_error *err);
/* Removes everything inside the folder path but keeps the folder itself
 * (its inode: a bind mount of it stays valid). */
int preft_fs_empty(const char *path, preft_error *err);
/* mkdir -p inside the current root (for paths inside a sandbox). */
int preft_fs_mkdirs(const char *path, int mode, preft_error *err);
/* Total bytes of regular files under path (for reports). */
int64_t preft_fs_tree_bytes(const char *path);

#endif
