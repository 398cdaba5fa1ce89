/*
 * madnis_bridge.h implemented for one MG5_aMC 3.5.x MadEvent SubProcesses/P* directory (project code).
 *
 * The Fortran side (mb_mg5_shim.f) drives MadEvent's own phase-space mapping and matrix elements; this file
 * holds the C ABI: argument checks, the frozen-channel rule, a private working directory, the flat VEGAS grid
 * file (ftn25), interception of Fortran STOP, and quiet stdout.
 *
 * Environment (read by mb_init):
 *   MADNIS_MG5_GROUPED = sample (default) | sum
 *       grouped P directories: how the (subprocess, beam mirror) choice is made deterministic.
 *       sample: one choice per point, probability proportional to its PDF weight, driven by a number derived
 *               from a 64-bit hash of (channel, bit patterns of r); weight x (sum of PDF weights)/(chosen one).
 *               Same number of matrix-element calls as MadEvent.
 *       sum:    every choice evaluated and summed (exact conditional expectation; one ME call per choice).
 *   MADNIS_MG5_HELICITY = filter (default) | all
 *       matrix files that filter helicities at run time (ungrouped matrix.f, or matrix*_optim.f copied from
 *       _orig when no survey ran): filter = at the first evaluation, run MadEvent's own filter on a fixed
 *       sequence of internal points (deterministic, same helicities for every worker), then sum only the good
 *       helicities, as MadEvent does after its first MAXTRIES points; all = sum every helicity (exact, slower).
 *       Helicity-recycled matrix*_optim.f written by a MadEvent survey need neither.
 *   (ABI 2 events, both modes: MadEvent's own choices of the recorded event, i.e. the flavour IPSEL within a
 *    subprocess (prop. to its PDF weight), the helicity (prop. to |M_hel|^2), the colour flow (prop. to JAMP2 of
 *    the flows compatible with the channel's diagram) and the identical-particle assignment, draw their numbers
 *    from ranmar/ran1, which the shim replaces by a counter-based stream keyed by a hash of (channel, r); in sum
 *    mode the recorded (subprocess, mirror) is one of the summed choices, picked with probability |DSIG_k|/sum
 *    by a second hash of (channel, r).)
 *   MADNIS_MG5_VERBOSE = 1    leave MadEvent's prints on stdout (default: P/madnis_bridge/run_<pid>/mg5_stdout.log)
 *   MADNIS_MG5_TEST_HOOKS = stop   (tests only) the next mb_evaluate executes a Fortran STOP
 */
#define _GNU_SOURCE
#include "madnis_bridge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* ------------------------------------------------------------------ Fortran side (mb_mg5_shim.f) */
extern void mb_f_setup(int *iseed, int *ierr);
extern void mb_f_sizes(int *ndim, int *next, int *ninc, int *nchan, int *nsproc, int *ngoodhel, int *grouped,
                       int *maxr);
extern void mb_f_particles(int *pdg, double *masses, double *ebeam, int *lpp);
extern void mb_f_channels(int *diag);
extern void mb_f_set_sde(int *isde);
extern void mb_f_freeze(int *ic, int *ierr);
extern void mb_f_point(const double *r, double *usel, int *isum, double *p, double *w, double *alpha, int *istat);
extern void mb_f_hel(int *mode, int *ready);
extern void mb_f_event(const double *r, double *usel, int *isum, double *usum, int *istat, int *jproc, int *jmir,
                       double *xb, double *scale, double *alphas, int *pdg, int *icol, int *hel, double *plab,
                       int *nl, int *ridup, int *ristup, int *rmoth, int *rcol, double *rpup, int *rspin, int *snq,
                       double *sscl, int *spdg, double *sx, double *sq, double *sfac);
extern void mb_f_flush(void);
extern void mb_f_test_stop(void);

/* ------------------------------------------------------------------ state */
static struct {
    int initialized;
    int poisoned;           /* a Fortran STOP was intercepted: MadEvent's state is unreliable */
    char pdir[PATH_MAX];
    char rundir[PATH_MAX];
    int run_fd;
    int log_fd;
    int verbose;
    int sum_mode;
    int hel_all;            /* MADNIS_MG5_HELICITY=all: exact helicity sum instead of MadEvent's filter */
    int hel_warmup_passed;  /* points that passed the cuts during the helicity warm-up */
    int test_stop;          /* MADNIS_MG5_TEST_HOOKS=stop: execute a Fortran STOP in the next evaluation */
    int sde;
    int seed;
    int ndim, next, ninc, nchan, nsproc, ngoodhel, grouped, maxr;
    int frozen;             /* 0-based channel, -1 = none yet */
    int *pdg;
    double *masses;
    double ebeam[2];
    int lpp[2];
    int *chan_diag;
    int *chan_group;
    long n_points;
} S = {.run_fd = -1, .log_fd = -1, .frozen = -1};

static char g_err[4096];
static int g_errlen;

static void set_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    g_errlen = vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    if (g_errlen < 0) g_errlen = 0;
}

/* ------------------------------------------------------------------ Fortran STOP interception */
static jmp_buf g_jmp;
static volatile int g_armed;
static char g_stopmsg[1024];

static void stop_hit(const char *kind, const char *msg, size_t len, int code) {
    char text[512];
    size_t n = msg ? (len < sizeof text - 1 ? len : sizeof text - 1) : 0;
    if (n) memcpy(text, msg, n);
    text[n] = 0;
    if (g_armed) {
        g_armed = 0;
        snprintf(g_stopmsg, sizeof g_stopmsg, "Fortran %s intercepted (code %d%s%s)", kind, code,
                 n ? ", message: " : "", text);
        longjmp(g_jmp, 1);
    }
    fprintf(stderr, "madnis_bridge: Fortran %s %s (code %d) outside a bridge call\n", kind, text, code);
    fflush(stderr);
    exit(code);
}

/* gfortran >= 8 entry points (the trailing bool 'quiet' is ignored). Defined here, they take precedence over
 * libgfortran's for every object linked into this library (-Bsymbolic). */
void _gfortran_stop_string(const char *s, size_t len, bool quiet) { (void)quiet; stop_hit("STOP", s, len, 0); }
void _gfortran_stop_numeric(int code, bool quiet) { (void)quiet; stop_hit("STOP", NULL, 0, code); }
void _gfortran_error_stop_string(const char *s, size_t len, bool quiet) {
    (void)quiet;
    stop_hit("ERROR STOP", s, len, 1);
}
void _gfortran_error_stop_numeric(int code, bool quiet) { (void)quiet; stop_hit("ERROR STOP", NULL, 0, code); }
void _gfortran_exit_i4(int *status) { stop_hit("CALL EXIT", NULL, 0, status ? *status : 0); }
void _gfortran_exit_i8(int64_t *status) { stop_hit("CALL EXIT", NULL, 0, status ? (int)*status : 0); }

/* ------------------------------------------------------------------ call context: cwd + stdout */
typedef struct {
    int saved_cwd;
    int saved_stdout;
} ctx_t;

static int ctx_enter(ctx_t *c) {
    c->saved_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    c->saved_stdout = -1;
    if (S.run_fd < 0 || fchdir(S.run_fd) != 0) {
        set_err("cannot enter the bridge run directory %s: %s", S.rundir, strerror(errno));
        if (c->saved_cwd >= 0) close(c->saved_cwd);
        return -1;
    }
    if (!S.verbose && S.log_fd >= 0) {
        fflush(stdout);
        c->saved_stdout = dup(1);
        if (c->saved_stdout >= 0) dup2(S.log_fd, 1);
    }
    return 0;
}

static void ctx_leave(ctx_t *c) {
    mb_f_flush();
    fflush(stdout);
    if (c->saved_stdout >= 0) {
        dup2(c->saved_stdout, 1);
        close(c->saved_stdout);
    }
    if (c->saved_cwd >= 0) {
        if (fchdir(c->saved_cwd) != 0) { /* nothing sensible to do */
        }
        close(c->saved_cwd);
    }
}

/* ------------------------------------------------------------------ helpers */
static int mkdir_p(const char *path) {
    if (mkdir(path, 0775) == 0 || errno == EEXIST) return 0;
    return -1;
}

static void remove_tree_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char f[PATH_MAX];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
        unlink(f);
    }
    closedir(d);
    rmdir(dir);
}

/* remove run_<pid> directories whose process is gone */
static void clean_stale_rundirs(const char *base) {
    DIR *d = opendir(base);
    if (!d) return;
    struct dirent *e;
    char f[PATH_MAX];
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "run_", 4)) continue;
        char *end;
        long pid = strtol(e->d_name + 4, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(f, sizeof f, "%s/%s", base, e->d_name);
        remove_tree_flat(f);
    }
    closedir(d);
}

/* write path atomically if its content differs */
static int write_file_atomic(const char *path, const char *text) {
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = strlen(text);
        char *buf = malloc(n + 2);
        size_t got = buf ? fread(buf, 1, n + 1, f) : 0;
        fclose(f);
        int same = buf && got == n && memcmp(buf, text, n) == 0;
        free(buf);
        if (same) return 0;
    }
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f) return -1;
    fputs(text, f);
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

/* channel groups from symfact_orig.dat (diagram, value): value < 0 = copy of diagram |value| */
static void read_groups(void) {
    for (int c = 0; c < S.nchan; c++) S.chan_group[c] = c; /* representative channel */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/symfact_orig.dat", S.pdir);
    FILE *f = fopen(path, "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            double dg;
            int val;
            if (sscanf(line, "%lf %d", &dg, &val) != 2 || val >= 0) continue;
            int child = -1, parent = -1;
            for (int c = 0; c < S.nchan; c++) {
                if (S.chan_diag[c] == (int)dg) child = c;
                if (S.chan_diag[c] == -val) parent = c;
            }
            if (child >= 0 && parent >= 0) S.chan_group[child] = parent;
        }
        fclose(f);
    }
    /* resolve chains, then renumber representatives 0,1,2,... in channel order */
    for (int c = 0; c < S.nchan; c++) {
        int g = S.chan_group[c], guard = 0;
        while (S.chan_group[g] != g && guard++ < S.nchan) g = S.chan_group[g];
        S.chan_group[c] = g;
    }
    int *id = malloc(sizeof(int) * (size_t)S.nchan);
    int next = 0;
    for (int c = 0; c < S.nchan; c++) id[c] = -1;
    for (int c = 0; c < S.nchan; c++) {
        int g = S.chan_group[c];
        if (id[g] < 0) id[g] = next++;
        S.chan_group[c] = id[g];
    }
    free(id);
}

static int write_bridge_symfact(void) {
    /* ../symfact.dat seen from the run directory: every config its own channel, factor 1 (no copies folded
     * in: grouped DSIG then keeps SYMCONF = {config}, ungrouped DSIG uses NFACT = 1). */
    size_t cap = 32 * (size_t)S.nchan + 16;
    char *t = malloc(cap), *p = t;
    for (int c = 0; c < S.nchan; c++) p += snprintf(p, cap - (size_t)(p - t), "%d 1\n", S.chan_diag[c]);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/madnis_bridge/symfact.dat", S.pdir);
    int rc = write_file_atomic(path, t);
    free(t);
    return rc;
}

static int write_flat_ftn25(void) {
    /* MadEvent's grid file (dsample.f sample_init): upper bin edges in [-1,1] for 96 bins x invar rows,
     * then "twgt force_max_wgt", then the good-helicity flags (all true). A flat grid maps x = r. */
    int invar = S.ndim > 2 ? S.ndim : 2;
    FILE *f = fopen("ftn25", "w");
    if (!f) return -1;
    for (int j = 0; j < invar; j++) {
        for (int i = 1; i <= 96; i++) {
            fprintf(f, "%21.17f", -1.0 + 2.0 * i / 96.0);
            if (i % 4 == 0) fputc('\n', f);
        }
    }
    fprintf(f, " -1.0 -1.0\n");
    for (int i = 0; i < S.ngoodhel; i++) fprintf(f, " T%s", (i % 20 == 19) ? "\n" : "");
    fputc('\n', f);
    return fclose(f);
}

static inline uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static double point_hash(int channel, const double *r, int d) {
    uint64_t h = splitmix64(0x6D61646E69735F62ULL ^ (uint64_t)(channel + 1));
    for (int i = 0; i < d; i++) {
        uint64_t b;
        double v = r[i] == 0.0 ? 0.0 : r[i]; /* -0.0 == 0.0 */
        memcpy(&b, &v, sizeof b);
        h = splitmix64(h ^ b);
    }
    return (double)(h >> 11) * 0x1.0p-53;
}

/* Hash of (salt, channel, bit patterns of r) -> 64 bits (splitmix64 chain). */
static uint64_t point_key(uint64_t salt, int channel, const double *r, int d) {
    uint64_t h = splitmix64(salt ^ (uint64_t)(channel + 1));
    for (int i = 0; i < d; i++) {
        uint64_t b;
        double v = r[i] == 0.0 ? 0.0 : r[i];
        memcpy(&b, &v, sizeof b);
        h = splitmix64(h ^ b);
    }
    return h;
}

/* Second number for sum mode's recorded choice (independent of point_hash). */
static double point_hash2(int channel, const double *r, int d) {
    return (double)(point_key(0x73756D5F63686F69ULL, channel, r, d) >> 11) * 0x1.0p-53;
}

/* The stream behind the shim's ranmar/ran1: x_i = splitmix64(key + (i+1) golden) in (0, 1), keyed per point. */
static uint64_t g_stream_key, g_stream_ctr;

static void stream_set(int channel, const double *r, int d) {
    g_stream_key = point_key(0x72616E6D61725F73ULL, channel, r, d);
    g_stream_ctr = 0;
}

double mb_stream_next(void) {
    g_stream_ctr++;
    uint64_t x = splitmix64(g_stream_key + g_stream_ctr * 0x9E3779B97F4A7C15ULL);
    double u = (double)(x >> 11) * 0x1.0p-53;
    return u > 0.0 ? u : 0x1.0p-54;
}

/* Helicity filter of run-time-filtering matrix files, made deterministic: restart MadEvent's filter and feed it
 * a fixed sequence of internal points (summing all subprocesses), so that every worker of this channel ends with
 * the same good helicities whatever points it is later asked for. Called inside an armed context. */
static void helicity_warmup(int ch) {
    int mode = 3, ready = 0;
    mb_f_hel(&mode, &ready);
    if (!ready) return; /* no run-time filter (helicity-recycled matrix files), nothing to do */
    if (S.hel_all) {
        mode = 2;
        mb_f_hel(&mode, &ready);
        return;
    }
    mode = 0;
    mb_f_hel(&mode, &ready);
    double *r = malloc(sizeof(double) * (size_t)(S.ndim > 0 ? S.ndim : 1));
    double *p = malloc(sizeof(double) * (size_t)S.next * 4);
    double *a = malloc(sizeof(double) * (size_t)S.nchan);
    uint64_t state = splitmix64(0x68656C6963697479ULL ^ (uint64_t)(ch + 1));
    int isum = 1, passed = 0;
    for (int it = 0; it < 20000 && passed < 40; it++) {
        for (int i = 0; i < S.ndim; i++) {
            state = splitmix64(state);
            r[i] = (double)(state >> 11) * 0x1.0p-53;
        }
        double u = 0.5, w = 0.0;
        int st = 0;
        stream_set(ch, r, S.ndim);
        mb_f_point(r, &u, &isum, p, &w, a, &st);
        if (st == 0) passed++;
    }
    S.hel_warmup_passed = passed;
    if (passed < 11) { /* too few points to trust the filter: sum every helicity */
        mode = 2;
        mb_f_hel(&mode, &ready);
    }
    free(r);
    free(p);
    free(a);
}

/* ------------------------------------------------------------------ ABI */
int mb_abi_version(void) { return MB_ABI_VERSION; }

int mb_last_error(char *buf, int len) {
    if (buf && len > 0) {
        snprintf(buf, (size_t)len, "%s", g_err);
    }
    return g_errlen;
}

int mb_init(const char *process_dir, int sde_strategy, int seed) {
    if (!process_dir) {
        set_err("mb_init: process_dir is NULL");
        return MB_ERR_INPUT;
    }
    if (sde_strategy != 1 && sde_strategy != 2) {
        set_err("mb_init: sde_strategy must be 1 or 2, got %d", sde_strategy);
        return MB_ERR_INPUT;
    }
    char real[PATH_MAX];
    if (!realpath(process_dir, real)) {
        set_err("mb_init: process directory %s: %s", process_dir, strerror(errno));
        return MB_ERR_INIT;
    }
    if (S.initialized) {
        if (strcmp(real, S.pdir) != 0) {
            set_err("mb_init: already initialised for %s; one process directory per process", S.pdir);
            return MB_ERR_INIT;
        }
        S.sde = sde_strategy;
        mb_f_set_sde(&S.sde);
        return MB_OK;
    }
    char chk[PATH_MAX + 32];
    snprintf(chk, sizeof chk, "%s/configs.inc", real);
    if (access(chk, R_OK) != 0) {
        set_err("mb_init: %s is not an MG5 SubProcesses/P* directory (no configs.inc)", real);
        return MB_ERR_INIT;
    }
    snprintf(S.pdir, sizeof S.pdir, "%s", real);
    const char *e = getenv("MADNIS_MG5_VERBOSE");
    S.verbose = e && *e && strcmp(e, "0") != 0;
    e = getenv("MADNIS_MG5_GROUPED");
    if (e && *e && strcmp(e, "sum") && strcmp(e, "sample")) {
        set_err("mb_init: MADNIS_MG5_GROUPED must be 'sample' or 'sum', got '%s'", e);
        return MB_ERR_INPUT;
    }
    S.sum_mode = e && !strcmp(e, "sum");
    e = getenv("MADNIS_MG5_HELICITY");
    if (e && *e && strcmp(e, "filter") && strcmp(e, "all")) {
        set_err("mb_init: MADNIS_MG5_HELICITY must be 'filter' or 'all', got '%s'", e);
        return MB_ERR_INPUT;
    }
    S.hel_all = e && !strcmp(e, "all");
    e = getenv("MADNIS_MG5_TEST_HOOKS");
    S.test_stop = e && strstr(e, "stop") != NULL;
    S.sde = sde_strategy;
    S.seed = seed;

    char base[PATH_MAX + 32];
    snprintf(base, sizeof base, "%s/madnis_bridge", S.pdir);
    if (mkdir_p(base) != 0) {
        set_err("mb_init: cannot create %s: %s", base, strerror(errno));
        return MB_ERR_INIT;
    }
    clean_stale_rundirs(base);
    snprintf(S.rundir, sizeof S.rundir, "%s/run_%ld", base, (long)getpid());
    if (mkdir_p(S.rundir) != 0) {
        set_err("mb_init: cannot create %s: %s", S.rundir, strerror(errno));
        return MB_ERR_INIT;
    }
    S.run_fd = open(S.rundir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (S.run_fd < 0) {
        set_err("mb_init: cannot open %s: %s", S.rundir, strerror(errno));
        return MB_ERR_INIT;
    }
    if (!S.verbose) {
        char lg[PATH_MAX + 32];
        snprintf(lg, sizeof lg, "%s/mg5_stdout.log", S.rundir);
        S.log_fd = open(lg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0664);
    }

    /* sizes are static data (compiled-in includes) */
    mb_f_sizes(&S.ndim, &S.next, &S.ninc, &S.nchan, &S.nsproc, &S.ngoodhel, &S.grouped, &S.maxr);
    if (S.nchan <= 0) {
        set_err("mb_init: the process has no channels (MAPCONFIG(0) = %d)", S.nchan);
        return MB_ERR_INIT;
    }
    S.chan_diag = calloc((size_t)S.nchan, sizeof(int));
    S.chan_group = calloc((size_t)S.nchan, sizeof(int));
    S.pdg = calloc((size_t)S.next, sizeof(int));
    S.masses = calloc((size_t)S.next, sizeof(double));
    mb_f_channels(S.chan_diag);
    read_groups();
    if (write_bridge_symfact() != 0) {
        set_err("mb_init: cannot write %s/madnis_bridge/symfact.dat: %s", S.pdir, strerror(errno));
        return MB_ERR_INIT;
    }

    ctx_t c;
    if (ctx_enter(&c) != 0) return MB_ERR_INIT;
    int ierr = 0;
    g_armed = 1;
    if (setjmp(g_jmp)) {
        ctx_leave(&c);
        S.poisoned = 1;
        set_err("mb_init: %s (see %s/mg5_stdout.log)", g_stopmsg, S.rundir);
        return MB_ERR_STOP;
    }
    int iseed = seed;
    mb_f_setup(&iseed, &ierr);
    mb_f_set_sde(&S.sde);
    mb_f_sizes(&S.ndim, &S.next, &S.ninc, &S.nchan, &S.nsproc, &S.ngoodhel, &S.grouped, &S.maxr);
    mb_f_particles(S.pdg, S.masses, S.ebeam, S.lpp);
    g_armed = 0;
    ctx_leave(&c);
    if (ierr == 2) {
        set_err("mb_init: %d subprocesses x 2 mirrors exceed the shim's limit (mb_maxk in mb_shim.inc)", S.nsproc);
        return MB_ERR_INIT;
    }
    if (ierr) {
        set_err("mb_init: n_dims = %d exceeds the shim's limit %d", S.ndim, S.maxr);
        return MB_ERR_INIT;
    }
    S.initialized = 1;
    return MB_OK;
}

#define NEED_INIT()                                                                                              \
    do {                                                                                                         \
        if (!S.initialized) {                                                                                    \
            set_err("bridge not initialised (call mb_init first)");                                             \
            return MB_ERR_INIT;                                                                                  \
        }                                                                                                        \
    } while (0)

int mb_info_sizes(int *n_dims, int *n_external, int *n_incoming, int *n_channels, int *n_subprocesses,
                  int *sde_strategy) {
    NEED_INIT();
    if (n_dims) *n_dims = S.ndim;
    if (n_external) *n_external = S.next;
    if (n_incoming) *n_incoming = S.ninc;
    if (n_channels) *n_channels = S.nchan;
    if (n_subprocesses) *n_subprocesses = S.nsproc;
    if (sde_strategy) *sde_strategy = S.sde;
    return MB_OK;
}

int mb_info_particles(int *pdg, double *masses, double *ebeam, int *lpp) {
    NEED_INIT();
    for (int i = 0; i < S.next; i++) {
        if (pdg) pdg[i] = S.pdg[i];
        if (masses) masses[i] = S.masses[i];
    }
    for (int i = 0; i < 2; i++) {
        if (ebeam) ebeam[i] = S.ebeam[i];
        if (lpp) lpp[i] = S.lpp[i];
    }
    return MB_OK;
}

int mb_info_channels(int *channel_diagram, int *channel_group) {
    NEED_INIT();
    for (int c = 0; c < S.nchan; c++) {
        if (channel_diagram) channel_diagram[c] = S.chan_diag[c];
        if (channel_group) channel_group[c] = S.chan_group[c];
    }
    return MB_OK;
}

/* outputs of one batch: evaluate (mode 0) or events (mode 1); any events pointer may be NULL */
typedef struct {
    double *momenta, *weight, *alpha;
    int *status;
    /* events */
    int *iproc, *mirror, *pdg, *icolup, *helicity;
    double *x1x2, *scale, *alphas, *momenta_lab;
    int max_lines, *n_lines, *idup, *istup, *mothup, *rcol, *spinup;
    double *pup;
    /* systematics (mb_syst_details) */
    int *n_qcd, *pdf_pdg;
    double *ren_scale, *pdf_x, *pdf_q, *totfact;
    int syst_missing; /* set when a valid point came back without use_syst information */
} batch_out;

static int max_record_lines(void) { return S.next >= 2 ? 2 * S.next - 3 : S.next; }

static void event_point(int ch, const double *rk, batch_out *o, int k) {
    int ne = S.next, mxl = max_record_lines();
    int isum = S.sum_mode, st = 0, jproc = 0, jmir = 0, nl = 0;
    double u = point_hash(ch, rk, S.ndim), usum = point_hash2(ch, rk, S.ndim), xb[2] = {0, 0}, sc = 0, as = 0;
    int pdg[64], icol[128], hel[64], ridup[128], ristup[128], rmoth[256], rcol[256], rspin[128];
    double plab[256], rpup[640];
    int snq = -1, spdg[2] = {0, 0};
    double sscl = 0, sx[2] = {0, 0}, sq[2] = {0, 0}, sfac = 0;
    mb_f_event(rk, &u, &isum, &usum, &st, &jproc, &jmir, xb, &sc, &as, pdg, icol, hel, plab, &nl, ridup, ristup,
               rmoth, rcol, rpup, rspin, &snq, &sscl, spdg, sx, sq, &sfac);
    int ok = st == MB_POINT_OK && nl > 0 && isfinite(sc) && isfinite(xb[0]) && isfinite(xb[1]);
    for (int i = 0; ok && i < 4 * ne; i++)
        if (!isfinite(plab[i])) ok = 0;
    if (st == MB_POINT_OK && !ok && nl > 0) st = MB_POINT_NONFINITE;
    if (o->status) o->status[k] = st;
    if (st != MB_POINT_OK) nl = 0, jproc = 0, jmir = 0;
    int valid = st == MB_POINT_OK && nl > 0;
    if (o->iproc) o->iproc[k] = valid ? jproc - 1 : 0;
    if (o->mirror) o->mirror[k] = valid && jmir == 2 ? 1 : 0;
    if (o->x1x2) o->x1x2[2 * k] = valid ? xb[0] : 0.0, o->x1x2[2 * k + 1] = valid ? xb[1] : 0.0;
    if (o->scale) o->scale[k] = valid ? sc : 0.0;
    if (o->alphas) o->alphas[k] = valid ? as : 0.0;
    for (int i = 0; i < ne; i++) {
        size_t b = (size_t)k * (size_t)ne + (size_t)i;
        if (o->pdg) o->pdg[b] = valid ? pdg[i] : 0;
        if (o->icolup) o->icolup[2 * b] = valid ? icol[2 * i] : 0, o->icolup[2 * b + 1] = valid ? icol[2 * i + 1] : 0;
        if (o->helicity) o->helicity[b] = valid ? hel[i] : 0;
        if (o->momenta_lab)
            for (int j = 0; j < 4; j++) o->momenta_lab[4 * b + (size_t)j] = valid ? plab[4 * i + j] : 0.0;
    }
    if (valid && snq < 0) o->syst_missing = 1;
    int sv = valid && snq >= 0;
    if (o->n_qcd) o->n_qcd[k] = sv ? snq : 0;
    if (o->ren_scale) o->ren_scale[k] = sv ? sscl : 0.0;
    if (o->totfact) o->totfact[k] = sv ? sfac : 0.0;
    for (int b = 0; b < 2; b++) {
        if (o->pdf_pdg) o->pdf_pdg[2 * k + b] = sv ? spdg[b] : 0;
        if (o->pdf_x) o->pdf_x[2 * k + b] = sv ? sx[b] : 0.0;
        if (o->pdf_q) o->pdf_q[2 * k + b] = sv ? sq[b] : 0.0;
    }
    if (o->n_lines) o->n_lines[k] = valid ? nl : 0;
    for (int i = 0; i < o->max_lines; i++) {
        int use = valid && i < nl && i < mxl;
        size_t b = (size_t)k * (size_t)o->max_lines + (size_t)i;
        if (o->idup) o->idup[b] = use ? ridup[i] : 0;
        if (o->istup) o->istup[b] = use ? ristup[i] : 0;
        if (o->spinup) o->spinup[b] = use ? rspin[i] : 0;
        for (int j = 0; j < 2; j++) {
            if (o->mothup) o->mothup[2 * b + (size_t)j] = use ? rmoth[2 * i + j] : 0;
            if (o->rcol) o->rcol[2 * b + (size_t)j] = use ? rcol[2 * i + j] : 0;
        }
        if (o->pup)
            for (int j = 0; j < 5; j++) o->pup[5 * b + (size_t)j] = use ? rpup[5 * i + j] : 0.0;
    }
}

/* The common body of mb_evaluate (mode 0) and the event functions (mode 1): checks, frozen channel, private
 * directory, STOP interception, then one point after the other. */
static int run_points(const char *what, int mode, int n, const int *channels, const double *r, batch_out *o) {
    NEED_INIT();
    if (S.poisoned) {
        set_err("bridge unusable after an intercepted Fortran STOP: %s", g_stopmsg);
        return MB_ERR_STOP;
    }
    if (n < 0) {
        set_err("%s: n = %d < 0", what, n);
        return MB_ERR_INPUT;
    }
    if (n == 0) return MB_OK;
    if (!channels || !r || (mode == 0 && (!o->momenta || !o->weight || !o->alpha || !o->status))) {
        set_err("%s: NULL pointer argument", what);
        return MB_ERR_INPUT;
    }
    if (mode == 1 && S.next > 64) {
        set_err("%s: %d external particles exceed the shim's event limit of 64", what, S.next);
        return MB_ERR_INPUT;
    }
    int ch = channels[0];
    for (int k = 0; k < n; k++) {
        if (channels[k] < 0 || channels[k] >= S.nchan) {
            set_err("%s: channel %d out of range [0, %d)", what, channels[k], S.nchan);
            return MB_ERR_CHANNEL;
        }
        if (channels[k] != ch || (S.frozen >= 0 && channels[k] != S.frozen)) {
            set_err("%s: this library is frozen to channel %d (MadEvent keeps its channel in static "
                    "state); channel %d needs another worker process",
                    what, S.frozen >= 0 ? S.frozen : ch, channels[k]);
            return MB_ERR_CHANNEL;
        }
    }
    for (long i = 0; i < (long)n * S.ndim; i++) {
        if (!(r[i] >= 0.0 && r[i] <= 1.0)) {
            set_err("%s: r[%ld][%ld] = %g is outside [0, 1]", what, i / S.ndim, i % S.ndim, r[i]);
            return MB_ERR_INPUT;
        }
    }

    ctx_t c;
    if (ctx_enter(&c) != 0) return MB_ERR_INTERNAL;
    volatile int k = 0;
    g_armed = 1;
    if (setjmp(g_jmp)) {
        ctx_leave(&c);
        S.poisoned = 1;
        for (int j = k; j < n; j++) {
            if (o->weight) o->weight[j] = 0.0;
            if (o->status) o->status[j] = MB_POINT_ERROR;
        }
        set_err("%s (channel %d, point %d): %s (see %s/mg5_stdout.log)", what, ch, (int)k, g_stopmsg, S.rundir);
        return MB_ERR_STOP;
    }
    if (S.test_stop) mb_f_test_stop(); /* tests: a Fortran STOP must come back as MB_ERR_STOP */
    if (S.frozen < 0) {
        if (write_flat_ftn25() != 0) {
            g_armed = 0;
            ctx_leave(&c);
            set_err("%s: cannot write %s/ftn25: %s", what, S.rundir, strerror(errno));
            return MB_ERR_INTERNAL;
        }
        int ic = ch + 1, ierr = 0;
        mb_f_freeze(&ic, &ierr);
        if (ierr) {
            g_armed = 0;
            ctx_leave(&c);
            set_err("%s: cannot freeze channel %d", what, ch);
            return MB_ERR_CHANNEL;
        }
        S.frozen = ch;
        helicity_warmup(ch);
    }
    int isum = S.sum_mode;
    for (k = 0; k < n; k++) {
        const double *rk = r + (size_t)k * (size_t)S.ndim;
        stream_set(ch, rk, S.ndim);
        if (mode == 1) {
            event_point(ch, rk, o, k);
            continue;
        }
        double *pk = o->momenta + (size_t)k * (size_t)S.next * 4;
        double *ak = o->alpha + (size_t)k * (size_t)S.nchan;
        double u = point_hash(ch, rk, S.ndim);
        double w = 0.0;
        int st = 0;
        mb_f_point(rk, &u, &isum, pk, &w, ak, &st);
        if (!isfinite(w)) {
            w = 0.0;
            st = MB_POINT_NONFINITE;
        }
        if (st != MB_POINT_OK && st != MB_POINT_NONFINITE) w = 0.0;
        for (int j = 0; j < S.nchan; j++)
            if (!isfinite(ak[j])) {
                for (int jj = 0; jj < S.nchan; jj++) ak[jj] = 1.0 / S.nchan;
                if (st == MB_POINT_OK) st = MB_POINT_NONFINITE;
                w = 0.0;
                break;
            }
        o->weight[k] = w;
        o->status[k] = st;
    }
    S.n_points += n;
    g_armed = 0;
    ctx_leave(&c);
    return MB_OK;
}

int mb_evaluate(int n, const int *channels, const double *r, double *momenta, double *weight, double *alpha,
                int *status) {
    batch_out o = {.momenta = momenta, .weight = weight, .alpha = alpha, .status = status};
    return run_points("mb_evaluate", 0, n, channels, r, &o);
}

int mb_event_details(int n, const int *channels, const double *r, int *iproc, int *mirror, double *x1x2,
                     double *scale, double *alphas, int *pdg, int *icolup, int *helicity, double *momenta_lab,
                     int *status) {
    batch_out o = {.status = status, .iproc = iproc, .mirror = mirror, .x1x2 = x1x2, .scale = scale,
                   .alphas = alphas, .pdg = pdg, .icolup = icolup, .helicity = helicity,
                   .momenta_lab = momenta_lab, .max_lines = 0};
    return run_points("mb_event_details", 1, n, channels, r, &o);
}

int mb_syst_details(int n, const int *channels, const double *r, int *n_qcd, double *ren_scale, int *pdf_pdg,
                    double *pdf_x, double *pdf_q, double *totfact, int *status) {
    batch_out o = {.status = status, .n_qcd = n_qcd, .ren_scale = ren_scale, .pdf_pdg = pdf_pdg, .pdf_x = pdf_x,
                   .pdf_q = pdf_q, .totfact = totfact, .max_lines = 0};
    int rc = run_points("mb_syst_details", 1, n, channels, r, &o);
    if (rc == MB_OK && o.syst_missing) {
        set_err("mb_syst_details: no systematics information: use_syst is off in this process's run card "
                "(Cards/run_card.dat, compiled into Source/run_card.inc)");
        return MB_ERR_INPUT;
    }
    return rc;
}

int mb_event_record_size(int *max_lines) {
    NEED_INIT();
    if (!max_lines) {
        set_err("mb_event_record_size: NULL pointer argument");
        return MB_ERR_INPUT;
    }
    *max_lines = max_record_lines();
    return MB_OK;
}

int mb_event_record(int n, const int *channels, const double *r, int max_lines, int *n_lines, int *idup,
                    int *istup, int *mothup, int *icolup, double *pup, int *spinup) {
    NEED_INIT();
    if (max_lines < max_record_lines()) {
        set_err("mb_event_record: max_lines = %d < mb_event_record_size = %d", max_lines, max_record_lines());
        return MB_ERR_INPUT;
    }
    batch_out o = {.max_lines = max_lines, .n_lines = n_lines, .idup = idup, .istup = istup, .mothup = mothup,
                   .rcol = icolup, .pup = pup, .spinup = spinup};
    return run_points("mb_event_record", 1, n, channels, r, &o);
}

int mb_event_full(int n, const int *channels, const double *r, int *iproc, int *mirror, double *x1x2, double *scale,
                  double *alphas, int *pdg, int *icolup, int *helicity, double *momenta_lab, int max_lines,
                  int *n_lines, int *idup, int *istup, int *mothup, int *rec_icolup, double *pup, int *spinup,
                  int syst, int *n_qcd, double *ren_scale, int *pdf_pdg, double *pdf_x, double *pdf_q,
                  double *totfact, int *status) {
    NEED_INIT();
    int rec = n_lines != NULL;
    if (rec && max_lines < max_record_lines()) {
        set_err("mb_event_full: max_lines = %d < mb_event_record_size = %d", max_lines, max_record_lines());
        return MB_ERR_INPUT;
    }
    /* one mb_f_event per point fills every output the three separate functions would (event_point) */
    batch_out o = {.status = status, .iproc = iproc, .mirror = mirror, .x1x2 = x1x2, .scale = scale,
                   .alphas = alphas, .pdg = pdg, .icolup = icolup, .helicity = helicity, .momenta_lab = momenta_lab,
                   .max_lines = rec ? max_lines : 0, .n_lines = n_lines, .idup = rec ? idup : NULL,
                   .istup = rec ? istup : NULL, .mothup = rec ? mothup : NULL, .rcol = rec ? rec_icolup : NULL,
                   .pup = rec ? pup : NULL, .spinup = rec ? spinup : NULL};
    if (syst) {
        o.n_qcd = n_qcd, o.ren_scale = ren_scale, o.pdf_pdg = pdf_pdg, o.pdf_x = pdf_x, o.pdf_q = pdf_q;
        o.totfact = totfact;
    }
    int rc = run_points("mb_event_full", 1, n, channels, r, &o);
    if (rc == MB_OK && syst && o.syst_missing) {
        set_err("mb_event_full: no systematics information: use_syst is off in this process's run card "
                "(Cards/run_card.dat, compiled into Source/run_card.inc)");
        return MB_ERR_INPUT;
    }
    return rc;
}

/* ---- extras, not part of the ABI (diagnostics for tests) ---- */
/* grouped mode in use (0 sample, 1 sum), whether the directory is grouped, the frozen channel */
int mbx_mg5_mode(int *sum_mode, int *grouped, int *frozen, int *hel_warmup_passed) {
    NEED_INIT();
    if (hel_warmup_passed) *hel_warmup_passed = S.hel_warmup_passed;
    if (sum_mode) *sum_mode = S.sum_mode;
    if (grouped) *grouped = S.grouped;
    if (frozen) *frozen = S.frozen;
    return MB_OK;
}
