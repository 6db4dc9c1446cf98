/* cli_mpi.c - the ranks of `mpirun -np N preft ...` (docs/TRAINING.md,
 * "Data-parallel training with MPI"; docs/TASKS.md, "Sharded runs"). MPI
 * when CMake found it (PREFT_HAVE_MPI), a clear refusal otherwise; the
 * library never links MPI: training gets a preft_train_comm whose sums are
 * MPI_Allreduce here. Only this file calls MPI. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#ifdef PREFT_HAVE_MPI
#include <mpi.h>
#endif

/* The launcher's word on how many ranks this job has: Open MPI's mpirun,
 * then PMI (MPICH's hydra, Slurm's srun). 0: not started by a launcher;
 * -1: started by one that does not say (PMIx alone). */
static int launcher_size(int *local) {
  static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
  static const char *const local_vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"};
  *local = 1;
  for (int i = 0; i < 2; i++) {
    const char *l = getenv(local_vars[i]);
    if (l && atoi(l) > 0) *local = atoi(l);
  }
  for (int i = 0; i < 2; i++) {
    const char *s = getenv(size_vars[i]);
    if (s && *s) return atoi(s) > 0 ? atoi(s) : 1;
  }
  return getenv("PMIX_RANK") ? -1 : 0;
}

const char *cli_mpi_library(void) {
#ifdef PREFT_HAVE_MPI
  static char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  char *nl = strpbrk(v, ",\n");
  if (nl) *nl = 0;
  return v;
#else
  return NULL;
#endif
}

#ifdef PREFT_HAVE_MPI
/* MPI counts are int: a buffer longer than INT_MAX goes in pieces. */
#define MPI_PIECE ((size_t)1 << 30)

static int mpi_fail(int code, const char *what, preft_error *err) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, msg, &len);
  return preft_fail(err, "%s: %s", what, msg);
}

static int sum_f32(void *ctx, float *buf, size_t n, preft_error *err) {
  (void)ctx;
  for (size_t at = 0; at < n; at += MPI_PIECE) {
    size_t k = n - at < MPI_PIECE ? n - at : MPI_PIECE;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf + at, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce of the gradients", err);
  }
  return 0;
}

static int sum_f64(void *ctx, double *buf, size_t n, preft_error *err) {
  (void)ctx;
  int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "MPI_Allreduce", err);
}
#endif

int cli_dist_open(cli_dist *d, const char *cmd) {
  memset(d, 0, sizeof *d);
  d->size = d->local_size = 1;
  int local;
  int size = launcher_size(&local);
  if (size == 0) return 0;
#ifdef PREFT_HAVE_MPI
  if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
    fprintf(stderr, "preft %s: MPI_Init failed\n", cmd);
    return CLI_EXIT_ERROR;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  d->mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &d->size);
  d->local_size = local;
  d->comm = (preft_train_comm){.rank = d->rank, .size = d->size, .sum_f32 = sum_f32, .sum_f64 = sum_f64};
  return 0;
#else
  if (size == 1) return 0;
  if (size > 1)
    fprintf(stderr,
            "preft %s: started by mpirun as one of %d ranks, but this preft was built without MPI; "
            "install an MPI (Debian: libopenmpi-dev) and rebuild (CMake finds it), or run without mpirun\n",
            cmd, size);
  else
    fprintf(stderr,
            "preft %s: started by an MPI launcher, but this preft was built without MPI; install an MPI "
            "(Debian: libopenmpi-dev) and rebuild (CMake finds it), or run without the launcher\n",
            cmd);
  return CLI_EXIT_USAGE;
#endif
}

int cli_dist_close(cli_dist *d, int rc) {
#ifdef PREFT_HAVE_MPI
  if (d->mpi) {
    /* a rank that failed alone would leave the others waiting in a sum */
    if (rc != 0 && d->size > 1) MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
  }
#endif
  d->mpi = false;
  return rc;
}

int cli_dist_barrier(const cli_dist *d, int ok, preft_error *err) {
  if (d->size <= 1) return ok ? 0 : -1;
  double v = ok ? 0.0 : 1.0;
  if (d->comm.sum_f64(d->comm.ctx, &v, 1, err) != 0) return -1;
  if (v != 0.0 && ok) return preft_fail(err, "%.0f other rank(s) failed", v);
  return ok ? 0 : -1;
}

int cli_dist_threads(const cli_dist *d, int threads) {
  if (threads > 0 || d->size <= 1) return threads;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
  if (mine < online) return mine; /* the launcher bound this rank to its own cores */
  int t = (int)(online / (d->local_size > 0 ? d->local_size : 1));
  return t > 0 ? t : 1;
}
