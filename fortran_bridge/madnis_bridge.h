/*
 * madnis_bridge.h — the C ABI between one compiled process library and Python (cffi).
 *
 * One shared library = one process (one MG5 SubProcesses/P* directory, or the project's reference process).
 * The library holds global state (MadEvent keeps its state in COMMON blocks); it is NOT re-entrant and, for
 * MG5, the phase-space channel is frozen by the first evaluation. Python therefore runs each library in worker
 * processes and routes points of one channel to one worker (madnis_plugin/bridge/pool.py).
 *
 * Conventions
 *  - channels are 0-based indices into the library's channel list (MG5 config = channel + 1).
 *  - r is row-major double[n][n_dims] with every entry in [0, 1].
 *  - momenta is row-major double[n][n_external][4], (E, px, py, pz) in GeV, partonic c.m. frame for MG5.
 *  - weight[k] = f(x)/g_channel(x) in pb: matrix element with PDFs, cuts, flux and phase-space Jacobian,
 *    *without* the channel weight, so that  integral over flat r of alpha[k][channel]*weight[k] = sigma_channel.
 *  - alpha is row-major double[n][n_channels], rows sum to 1 (the prior channel weights, SDE style).
 *  - status[k]: 0 ok, 1 cut (weight 0), 2 failed mapping (weight 0), 3 non-finite (weight 0), 4 error.
 *  - every return code: 0 = ok, else one of MB_ERR_*; mb_last_error gives a message.
 *  - ABI 2 adds the per-event details (mb_event_details) and the event record with intermediate resonances
 *    (mb_event_record_size, mb_event_record); the ABI 1 functions are unchanged.
 *  - a Fortran STOP must not kill the caller: the shim redirects it into MB_ERR_STOP where it can; Python
 *    additionally isolates each library in a worker process so that a real abort is an exception, not a crash.
 */
#ifndef MADNIS_BRIDGE_H
#define MADNIS_BRIDGE_H

#define MB_ABI_VERSION 2

#define MB_OK 0
#define MB_ERR_INIT 1      /* init failed or not called */
#define MB_ERR_CHANNEL 2   /* channel out of range, or a second channel in a frozen-channel library */
#define MB_ERR_INPUT 3     /* bad n, r outside [0,1], null pointer */
#define MB_ERR_STOP 4      /* a Fortran STOP was intercepted */
#define MB_ERR_INTERNAL 5

#define MB_POINT_OK 0
#define MB_POINT_CUT 1
#define MB_POINT_FAILED_MAPPING 2
#define MB_POINT_NONFINITE 3
#define MB_POINT_ERROR 4

int mb_abi_version(void);

/* Initialise from a directory (for MG5: the P* directory; the library chdirs to a scratch subdirectory of it).
 * sde_strategy: 1 or 2 (MG5's channel-weight strategy); the reference process accepts 1 and 2 as well.
 * seed: drives nothing random in evaluate (evaluate is deterministic in r); kept for MadEvent's own RNG init. */
int mb_init(const char *process_dir, int sde_strategy, int seed);

/* Sizes. n_subprocesses = number of P-group subprocesses (1 for the reference process). */
int mb_info_sizes(int *n_dims, int *n_external, int *n_incoming, int *n_channels, int *n_subprocesses,
                  int *sde_strategy);
/* pdg[n_external], masses[n_external] (GeV), ebeam[2] (GeV), lpp[2] (MG5 beam types). */
int mb_info_particles(int *pdg, double *masses, double *ebeam, int *lpp);
/* channel_diagram[n_channels]: the diagram number each channel maps (MG5 MAPCONFIG);
 * channel_group[n_channels]: group index (channels in one group share a flow), 0-based. */
int mb_info_channels(int *channel_diagram, int *channel_group);

/* Evaluate n points. Deterministic: the same (channel, r) always gives the same output. */
int mb_evaluate(int n, const int *channels, const double *r, double *momenta, double *weight, double *alpha,
                int *status);

/* ------------------------------------------------------------------------------------------------ ABI 2: events
 * Everything an event record needs besides momenta and weight, for n points. Deterministic in (channel, r) and
 * consistent with mb_evaluate at the same point: the same subprocess/mirror choice (MG5, sample mode: the same hash
 * of (channel, r); sum mode: one choice with probability proportional to its |contribution|, from a second hash),
 * the same cuts, scales and phase-space point. Every output pointer may be NULL (not wanted).
 *   status[n]           as in mb_evaluate; where status != 0 every other output of the point is zero.
 *   iproc[n]            0-based subprocess of the P-group (MG5 IPROC - 1); 0 for a single process.
 *   mirror[n]           1 if the beams are swapped (MG5 IMIRROR = 2), else 0.
 *   x1x2[n][2]          momentum fractions of the partons of beam 1 (+z) and beam 2 (-z); 1 without PDFs.
 *   scale[n]            SCALUP in GeV (MG5: sqrt(max(q2fact(1), q2fact(2))), the factorisation scale DSIG used).
 *   alphas[n]           AQCDUP: the strong coupling the matrix element used (MG5: G^2/4pi); -1 if none.
 *   pdg[n][n_ext]       PDG ids of the chosen flavour combination.
 *   icolup[n][n_ext][2] LHE colour / anticolour tags (501, 502, ...; 0 = none) of the chosen colour flow.
 *   helicity[n][n_ext]  -1/0/+1 of the chosen helicity configuration, or 9 (unknown).
 *   momenta_lab[n][n_ext][4]  (E, px, py, pz) in the lab frame.
 * Particle order: beam order for the incoming partons (0 = the parton of beam 1, along +z; with mirror = 1 this is
 * the subprocess's second incoming particle), process order for the final state (as in mb_evaluate's momenta; with
 * mirror = 1 the final state is the c.m. configuration rotated by pi about the x axis, then boosted). */
int mb_event_details(int n, const int *channels, const double *r, int *iproc, int *mirror, double *x1x2,
                     double *scale, double *alphas, int *pdg, int *icolup, int *helicity, double *momenta_lab,
                     int *status);

/* Optional (ABI 2 extension, the MG5 shim only; look the symbol up before use): MadEvent's systematics
 * information for n points, the <mgrwt> block unwgt.f writes when the run card has use_syst = True. Consistent with
 * mb_event_details (same choices). Where status != 0 every other output of the point is zero.
 *   n_qcd[n]        power of alpha_s in the matrix element (<rscale>, MadEvent n_qcd - n_alpsem).
 *   ren_scale[n]    renormalisation scale the matrix element used, GeV (<rscale>).
 *   pdf_pdg[n][2]   per beam (0 = beam 1, +z): PDG id of the parton whose PDF weights the event; 0 = no PDF.
 *   pdf_x[n][2], pdf_q[n][2]   its momentum fraction and factorisation scale (GeV) (<pdfrwt>).
 *   totfact[n]      MadEvent's s_rwfact (<totfact>).
 * Returns MB_ERR_INPUT when the process was built with use_syst = False (no information to give). */
int mb_syst_details(int n, const int *channels, const double *r, int *n_qcd, double *ren_scale, int *pdf_pdg,
                    double *pdf_x, double *pdf_q, double *totfact, int *status);

/* The most lines an event record can have (external particles + intermediate resonances). */
int mb_event_record_size(int *max_lines);

/* The event record as MadEvent writes it into events.lhe (LHE lines in order: incoming, resonances, final state),
 * for n points, consistent with mb_event_details (same choices). max_lines (>= mb_event_record_size) is the
 * row length of every array below; unused lines are zero. Any output pointer may be NULL.
 *   n_lines[n]; idup[n][max_lines]; istup (-1 incoming, 1 outgoing, 2 intermediate resonance);
 *   mothup[n][max_lines][2] (1-based line numbers, 0 = none); icolup[n][max_lines][2];
 *   pup[n][max_lines][5] (E, px, py, pz, m) in the lab frame, GeV; spinup[n][max_lines] (-1/0/+1, 9 unknown). */
int mb_event_record(int n, const int *channels, const double *r, int max_lines, int *n_lines, int *idup,
                    int *istup, int *mothup, int *icolup, double *pup, int *spinup);

/* Optional (ABI 2 extension, the MG5 shim only; look the symbol up before use): mb_event_details, mb_event_record
 * and (syst = 1) mb_syst_details in one pass, i.e. one matrix-element evaluation per point instead of one per
 * function; same outputs, same rules (any output pointer may be NULL; the record part is written when n_lines is
 * not NULL, with max_lines >= mb_event_record_size). With syst = 0 the systematics pointers are ignored; with
 * syst = 1 it returns MB_ERR_INPUT like mb_syst_details when the process was built with use_syst = False. */
int mb_event_full(int n, const int *channels, const double *r, int *iproc, int *mirror, double *x1x2, double *scale,
                  double *alphas, int *pdg, int *icolup, int *helicity, double *momenta_lab, int max_lines,
                  int *n_lines, int *idup, int *istup, int *mothup, int *rec_icolup, double *pup, int *spinup,
                  int syst, int *n_qcd, double *ren_scale, int *pdf_pdg, double *pdf_x, double *pdf_q,
                  double *totfact, int *status);

/* Copy the last error message (NUL-terminated, truncated to len-1). Returns its full length. */
int mb_last_error(char *buf, int len);

#endif
