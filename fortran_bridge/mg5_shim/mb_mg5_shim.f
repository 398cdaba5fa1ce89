c***********************************************************************
c     madnis_bridge: MG5_aMC 3.5.x MadEvent shim (project code).
c
c     Compiled inside an MG5 SubProcesses/P* directory (its include
c     files), linked with that directory's MadEvent objects and MG5's
c     libraries into one shared library; the C ABI is mb_mg5_bridge.c.
c
c     What it does, per point of the frozen channel (config mb_ic):
c       1. the random numbers r(1..ndim) are put in /mb_rvec/ and
c          MadEvent's own x_to_f_arg maps them to momenta: every
c          variable is drawn by sample_get_x -> ntuple(x,a,b,j,..),
c          and the replacement ntuple below returns a + r(j)*(b-a);
c          with the flat ftn25 grid written at init this makes x = r
c          (grid Jacobian 1) followed by MadEvent's channel mapping.
c       2. the matrix element is evaluated with multi_channel off, so
c          DSIGn returns the full integrand (no channel factor); its
c          per-diagram |M_d|^2 are left in /to_amps/ AMP2 (zeroed by us
c          before every call), from which alpha is built.
c       3. grouped directories: the (IPROC, IMIRROR) choice MadEvent's
c          DSIG makes with RANMAR is made here either from a number u
c          that the C side derives from a hash of (channel, r) with
c          probability proportional to the PDF weight (mode 0, same
c          cost as MadEvent), or summed over all choices (mode 1).
c          Symmetric copies are NOT folded in (each config is its own
c          channel, with its own mapping, NFACT = 1).
c***********************************************************************

      subroutine ntuple(x,a,b,ii,jconfig)
c     Replacement of MG5's Source/ranmar.f ntuple: the number comes from
c     the point being evaluated, not from ranmar.
      implicit none
      double precision x,a,b
      integer ii,jconfig
      include 'mb_shim.inc'
      if (ii.ge.1 .and. ii.le.mb_nr) then
         x = a + mb_r(ii)*(b-a)
      else
         mb_nbad = mb_nbad + 1
         x = a + 0.5d0*(b-a)
      endif
      end


      subroutine mb_f_setup(iseed, ierr) bind(C, name='mb_f_setup')
c     Channel-independent initialisation, in driver.f's order.
      use iso_c_binding
      implicit none
      integer(c_int) iseed, ierr
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'maxamps.inc'
      include 'run.inc'
      include 'coupl.inc'
      include 'mb_shim.inc'
      double precision zero
      parameter (zero=0d0)
      character*30 param_card_name
      common/to_param_card_name/param_card_name
      double precision pmass(nexternal)
      common/to_mass/ pmass
      double precision twgt, maxwgt, swgt(maxevents)
      integer lun, nw, itmin
      common/to_unwgt/twgt, maxwgt, swgt, lun, nw, itmin
      integer isum_hel
      logical multi_channel
      common/to_matrix/isum_hel, multi_channel
      integer use_cut
      common/to_weight/use_cut
      logical init_mode
      common/to_determine_zero_hel/init_mode
      integer lbw(0:nexternal)
      common/to_BW/ lbw
      integer mincfig, maxcfig
      common/to_configs/mincfig, maxcfig
      integer i, ij, kl

      ierr = 0
      mb_nr = 0
      mb_nbad = 0
      mb_ic = 0
      mb_ninvar = 0
      twgt = -2d0
      lun = 27
      nw = 0
      param_card_name = 'param_card.dat'
      call setrun
      call setpara(param_card_name)
      include 'pmass.inc'
      call setcuts
      call init_good_hel()
c     commons driver.f's get_user_params would set (stdin of madevent)
      isum_hel = 0
      multi_channel = .false.
      use_cut = 0
      init_mode = .false.
      do i = 0, nexternal
         lbw(i) = 0
      enddo
      hel_picked = -1
      hel_jacobian = 1d0
c     MadEvent's own channel factor is never applied (multi_channel off);
c     the strategy for alpha is mb_sde (set from C). Keep MG5's at 1.
      sde_strat = 1
      mb_sde = 1
c     number of dimensions (driver.f)
      mb_ndim = 3*(nexternal-nincoming) - 4
      if (mb_ndim .lt. 0) mb_ndim = 0
      if (nincoming.gt.1 .and. abs(lpp(1)).ge.1) mb_ndim = mb_ndim + 1
      if (nincoming.gt.1 .and. abs(lpp(2)).ge.1) mb_ndim = mb_ndim + 1
      if (mb_ndim .gt. mb_maxr) then
         ierr = 1
         return
      endif
      if (2*maxsproc .gt. mb_maxk) then
         ierr = 2
         return
      endif
c     ranmar only drives things that do not change the weight (the
c     helicity/flavour recorded for an event); seed it anyway
      ij = 1802 + mod(abs(iseed), 31000)
      kl = 9373
      call rmarin(ij, kl)
      end


      subroutine mb_f_sizes(ndim, next, ninc, nchan, nsproc, ngoodhel,
     &     grouped, maxr) bind(C, name='mb_f_sizes')
      use iso_c_binding
      implicit none
      integer(c_int) ndim, next, ninc, nchan, nsproc, ngoodhel
      integer(c_int) grouped, maxr
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'maxamps.inc'
      include 'mb_build.inc'
      include 'mb_shim.inc'
      integer mapconfig(0:lmaxconfigs), this_config
      common/to_mconfigs/mapconfig, this_config
      ndim = mb_ndim
      next = nexternal
      ninc = nincoming
      nchan = mapconfig(0)
      nsproc = maxsproc
      ngoodhel = mb_ngoodhel
      grouped = mb_grouped
      maxr = mb_maxr
      end


      subroutine mb_f_particles(pdg, masses, eb, lp)
     &     bind(C, name='mb_f_particles')
      use iso_c_binding
      implicit none
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'maxamps.inc'
      include 'run.inc'
      integer(c_int) pdg(nexternal), lp(2)
      real(c_double) masses(nexternal), eb(2)
      double precision pmass(nexternal)
      common/to_mass/ pmass
      integer i
      integer idup(nexternal,maxproc,maxsproc)
      integer mothup(2,nexternal)
      integer icolup(2,nexternal,maxflow,maxsproc)
      include 'leshouche.inc'
      do i = 1, nexternal
         pdg(i) = idup(i,1,1)
         masses(i) = pmass(i)
      enddo
      eb(1) = ebeam(1)
      eb(2) = ebeam(2)
      lp(1) = lpp(1)
      lp(2) = lpp(2)
      end


      subroutine mb_f_channels(diag) bind(C, name='mb_f_channels')
      use iso_c_binding
      implicit none
      include 'genps.inc'
      include 'maxconfigs.inc'
      integer(c_int) diag(*)
      integer mapconfig(0:lmaxconfigs), this_config
      common/to_mconfigs/mapconfig, this_config
      integer i
      do i = 1, mapconfig(0)
         diag(i) = mapconfig(i)
      enddo
      end


      subroutine mb_f_set_sde(isde) bind(C, name='mb_f_set_sde')
      use iso_c_binding
      implicit none
      integer(c_int) isde
      include 'mb_shim.inc'
      mb_sde = isde
      end


      subroutine mb_f_freeze(ic, ierr) bind(C, name='mb_f_freeze')
c     Freeze the channel (config ic, 1-based): driver.f steps 8-10.
c     The flat ftn25 must already be in the current directory.
      use iso_c_binding
      implicit none
      integer(c_int) ic, ierr
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'run.inc'
      include 'mb_shim.inc'
      integer minvar(maxdim,lmaxconfigs)
      common/to_invar/ minvar
      integer mincfig, maxcfig
      common/to_configs/mincfig, maxcfig
      integer mapconfig(0:lmaxconfigs), this_config
      common/to_mconfigs/mapconfig, this_config
      integer ninvar, nbt, nconf
      ierr = 0
      if (ic.lt.1 .or. ic.gt.mapconfig(0)) then
         ierr = 1
         return
      endif
c     like the G directory's tag: the diagram number of the config;
c     configure_integral (first x_to_f_arg) turns it into ic
      mincfig = mapconfig(ic)
      maxcfig = mincfig
      nconf = 1
      minvar(1,1) = 0
      call map_invarients(minvar, nconf, ninvar, mincfig, maxcfig,
     &     nexternal, nincoming, nbt)
      ninvar = mb_ndim
      if (abs(lpp(1)).ge.1 .and. abs(lpp(2)).ge.1) then
         if (mb_ndim.gt.1) minvar(mb_ndim-1,mincfig) = ninvar - 1
         minvar(mb_ndim,mincfig) = ninvar
      elseif (abs(lpp(1)).ge.1 .or. abs(lpp(2)).ge.1) then
         minvar(mb_ndim,mincfig) = ninvar
      endif
      mb_ninvar = max(2, ninvar)
      call sample_init(mb_ndim, 1000, 1, mb_ninvar, nconf)
      mb_ic = ic
      end


      subroutine mb_f_hel(mode, ready) bind(C, name='mb_f_hel')
c     Good-helicity bookkeeping of matrix files that filter helicities at
c     run time (BLOCK_GOODHEL: the first MAXTRIES calls sum all
c     helicities and mark the non-zero ones). mode 0: restart the
c     filter; 1: report in ready whether it is finished;
c     2: mark every helicity good and the filter finished (exact sum);
c     3: ready = 1 if the matrix files filter at run time, else 0.
      use iso_c_binding
      implicit none
      integer(c_int) mode, ready
      include 'genps.inc'
      include 'mb_build.inc'
      integer ntry(mb_nntry)
      logical goodhel(mb_ngoodhel)
      common/block_goodhel/ntry, goodhel
      integer i
      if (mode .eq. 3) then
         ready = mb_helfilter
         return
      endif
      ready = 1
      if (mb_helfilter .eq. 0) return
      if (mode .eq. 0) then
c        (auto_dsig.f's init_good_hel lacks the COMMON statement in 3.5.7:
c        it only clears locals, so the reset is done here)
         do i = 1, mb_ngoodhel
            goodhel(i) = .false.
         enddo
         do i = 1, mb_nntry
            ntry(i) = 0
         enddo
      else if (mode .eq. 2) then
         do i = 1, mb_ngoodhel
            goodhel(i) = .true.
         enddo
         do i = 1, mb_nntry
            ntry(i) = maxtries + 1
         enddo
      endif
      do i = 1, mb_nntry
         if (ntry(i) .le. maxtries) ready = 0
      enddo
      end


      subroutine mb_f_test_stop() bind(C, name='mb_f_test_stop')
c     Test hook (MADNIS_MG5_TEST_HOOKS=stop): a Fortran STOP to intercept.
      implicit none
      stop 'madnis_bridge test hook'
      end


      subroutine mb_f_flush() bind(C, name='mb_f_flush')
      implicit none
      flush(6)
      end


      double precision function mb_dsig_fresh(pp, jproc, jmir, wgt,
     &     imode, passed)
c     mb_dsigproc with MadEvent's cut cache reset first: cutspassed is
c     read (stale) by cuts.f's B.W. cut, so a term evaluated on its own
c     must not depend on whatever was evaluated before it.
      implicit none
      include 'nexternal.inc'
      double precision pp(0:3,nexternal), wgt
      integer jproc, jmir, imode
      logical passed
      logical cutsdone, cutspassed
      common/to_cutsdone/cutsdone, cutspassed
      double precision mb_dsigproc
      external mb_dsigproc
      cutsdone = .false.
      cutspassed = .false.
      mb_dsig_fresh = mb_dsigproc(pp, jproc, jmir, wgt, imode, passed)
      end


      double precision function mb_dsigproc(pp, jproc, jmir, wgt,
     &     imode, passed)
c     One (subprocess, mirror) term of a grouped directory, like
c     auto_dsig.f's DSIGPROC but without the symmetric-copy permutation
c     (each config is evaluated with its own mapping) and always
c     flipping x1/x2 back. Cuts are not reset here (caller's choice).
      implicit none
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'maxamps.inc'
      include 'run.inc'
      include 'mb_shim.inc'
      double precision pp(0:3,nexternal), wgt
      integer jproc, jmir, imode
      logical passed
      integer i
      integer confsub(maxsproc,lmaxconfigs)
      include 'config_subproc_map.inc'
      integer imirror, iproc
      common/to_mirror/imirror, iproc
      integer subdiag(maxsproc), ib(2)
      common/to_sub_diag/subdiag, ib
      integer mapconfig(0:lmaxconfigs), this_config
      common/to_mconfigs/mapconfig, this_config
      double precision cm_rap
      logical set_cm_rap
      common/to_cm_rap/set_cm_rap, cm_rap
      double precision amp2(maxamps), jamp2(0:maxflow)
      common/to_amps/ amp2, jamp2
      logical passcuts
      double precision mb_dsign
      external passcuts, mb_dsign
      double precision p1(0:3,nexternal), xdum
      integer j

      this_config = mb_ic
      do i = 1, maxsproc
         subdiag(i) = confsub(i, mb_ic)
      enddo
      iproc = jproc
      imirror = jmir
      do i = 1, nexternal
         do j = 0, 3
            p1(j,i) = pp(j,i)
         enddo
      enddo
      ib(1) = 1
      ib(2) = 2
      if (jmir .eq. 2) then
         do i = 1, nexternal
            p1(2,i) = -p1(2,i)
            p1(3,i) = -p1(3,i)
         enddo
         ib(1) = 2
         ib(2) = 1
         xdum = xbk(1)
         xbk(1) = xbk(2)
         xbk(2) = xdum
         cm_rap = -cm_rap
      endif
      mb_dsigproc = 0d0
      passed = passcuts(p1)
      if (passed) then
         if (imode .eq. 0) then
            do i = 1, maxamps
               amp2(i) = 0d0
            enddo
            do i = 1, maxflow
               jamp2(i) = 0d0
            enddo
         endif
         mb_dsigproc = mb_dsign(jproc, p1, wgt, imode)
      endif
      if (jmir .eq. 2) then
         xdum = xbk(1)
         xbk(1) = xbk(2)
         xbk(2) = xdum
         cm_rap = -cm_rap
      endif
      end


      double precision function mb_sde2(p, iconf)
c     Correct "strategy 2" weight of config iconf: the product over its
c     propagators of 1/|p^2 - M^2 + i M Gamma|^2 (Gamma = 0 for
c     t-channel lines), regulated by (1e-10 stot)^2. The momenta of the
c     propagators follow iforest as in genps.f's get_channel_cut, whose
c     3.5.7 formula is not used (see the shim's README).
      implicit none
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'maxamps.inc'
      include 'coupl.inc'
      double precision p(0:3,nexternal)
      integer iconf
      double precision zero
      parameter (zero=0d0)
      integer iforest(2,-max_branch:-1,lmaxconfigs)
      integer tstrategy(lmaxconfigs)
      common/to_forest/ iforest, tstrategy
      integer sprop(maxsproc,-max_branch:-1,lmaxconfigs)
      integer tprid(-max_branch:-1,lmaxconfigs)
      common/to_sprop/sprop, tprid
      double precision stot, m1, m2
      common/to_stot/stot, m1, m2
      double precision prmass(-nexternal:0,lmaxconfigs)
      double precision prwidth(-nexternal:0,lmaxconfigs)
      integer pow(-nexternal:0,lmaxconfigs)
      logical first_time
      save prmass, prwidth, pow, first_time
      data first_time /.true./
      double precision q(0:3,-nexternal:nexternal), q2, xm, xw, den
      double precision reg, val
      integer i, j, k, d(2)

      if (first_time) then
         include 'props.inc'
         first_time = .false.
      endif
      do i = 1, nexternal
         do j = 0, 3
            q(j,i) = p(j,i)
            q(j,-i) = 0d0
         enddo
      enddo
      reg = (1d-10*stot)**2
      val = 1d0
      do i = 1, nexternal-3
         d(1) = iforest(1,-i,iconf)
         d(2) = iforest(2,-i,iconf)
         do k = 1, 2
            do j = 0, 3
               if (d(k).ge.1 .and. d(k).le.nincoming) then
                  q(j,-i) = q(j,-i) - q(j,d(k))
               else
                  q(j,-i) = q(j,-i) + q(j,d(k))
               endif
            enddo
         enddo
         q2 = q(0,-i)**2 - q(1,-i)**2 - q(2,-i)**2 - q(3,-i)**2
         xm = prmass(-i,iconf)
         xw = prwidth(-i,iconf)
         if (tprid(-i,iconf) .ne. 0) xw = 0d0
         den = (q2 - xm*xm)**2 + (xm*xw)**2 + reg
         val = val/den
      enddo
      mb_sde2 = val
      end


      subroutine mb_alpha_for(p1, jproc, alpha, nchan)
c     alpha(1..nchan) for one subprocess, after its matrix element call
c     (AMP2 filled). Strategy 1: alpha_j = AMP2(diagram of config j) x
c     MG5's channel cut (1 unless tmin_for_channel is set), normalised
c     over the configs (= MadEvent's AMP2(SUBDIAG)/XTOT). Strategy 2:
c     mb_sde2, normalised. Configs absent from subprocess jproc get 0.
c     Returns all zeros if the normalisation vanishes.
      implicit none
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'maxamps.inc'
      include 'run.inc'
      include 'mb_build.inc'
      include 'mb_shim.inc'
      integer jproc, nchan
      double precision p1(0:3,nexternal), alpha(nchan)
      integer i
      integer confsub(maxsproc,lmaxconfigs)
      include 'config_subproc_map.inc'
      integer mapconfig(0:lmaxconfigs), this_config
      common/to_mconfigs/mapconfig, this_config
      double precision amp2(maxamps), jamp2(0:maxflow)
      common/to_amps/ amp2, jamp2
      double precision get_channel_cut, mb_sde2
      external get_channel_cut, mb_sde2
      double precision tot
      integer j, dg

      tot = 0d0
      do j = 1, nchan
         alpha(j) = 0d0
         if (mb_grouped .eq. 1) then
            dg = confsub(jproc, j)
         else
            dg = mapconfig(j)
         endif
         if (dg .gt. 0) then
            if (mb_sde .eq. 2) then
               alpha(j) = mb_sde2(p1, j)
            else
               alpha(j) = amp2(dg)
               if (mb_grouped.eq.1 .and. tmin_for_channel.ne.-1d0)
     &              alpha(j) = alpha(j)*get_channel_cut(p1, j)
            endif
            tot = tot + alpha(j)
         endif
      enddo
      if (tot .gt. 0d0 .and. tot .lt. 1d300) then
         do j = 1, nchan
            alpha(j) = alpha(j)/tot
         enddo
      else
         do j = 1, nchan
            alpha(j) = 0d0
         enddo
      endif
      end


      integer function mb_choose(nk, w, total, u)
c     The choice k in 1..nk with probability w(k)/total for u uniform in
c     [0,1), moved back past zero weights so that rounding never selects
c     an empty choice (grouped subprocess/mirror selection).
      implicit none
      integer nk, k
      double precision w(nk), total, u, acc
      mb_choose = nk
      acc = 0d0
      do k = 1, nk
         acc = acc + w(k)
         if (u*total .lt. acc) then
            mb_choose = k
            goto 10
         endif
      enddo
 10   continue
      do while (w(mb_choose) .le. 0d0 .and. mb_choose .gt. 1)
         mb_choose = mb_choose - 1
      enddo
      end


      subroutine mb_f_point(r, usel, isum, pout, wout, alpha, istat)
     &     bind(C, name='mb_f_point')
c     Evaluate one point of the frozen channel mb_ic.
c     r(ndim): random numbers; usel in [0,1): drives the grouped
c     (IPROC, IMIRROR) choice when isum = 0; isum = 1 sums the choices.
c     pout(0:3,nexternal): momenta; wout: weight in pb without channel
c     factor; alpha(nchan); istat: 0 ok, 1 cut, 2 failed mapping.
      use iso_c_binding
      implicit none
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'maxamps.inc'
      include 'run.inc'
      include 'mb_build.inc'
      include 'mb_shim.inc'
      real(c_double) r(*), usel, pout(0:3,nexternal), wout, alpha(*)
      integer(c_int) isum, istat
      integer i
      integer confsub(maxsproc,lmaxconfigs)
      include 'config_subproc_map.inc'
      logical mirrorprocs(maxsproc)
      include 'mb_mirrorprocs.inc'
      integer mincfig, maxcfig
      common/to_configs/mincfig, maxcfig
      integer mapconfig(0:lmaxconfigs), this_config
      common/to_mconfigs/mapconfig, this_config
      logical cutsdone, cutspassed
      common/to_cutsdone/cutsdone, cutspassed
      double precision amp2(maxamps), jamp2(0:maxflow)
      common/to_amps/ amp2, jamp2
      double precision mb_dsigproc, mb_dsig_fresh, dsig
      external mb_dsigproc, mb_dsig_fresh, dsig
      double precision pgen(0:3,nexternal+1), xdum(maxinvar)
      double precision wps, sel(2*maxsproc), sumsel, f, fsum, acc
      double precision atmp(lmaxconfigs)
      integer nk, k, kk, mb_choose
      integer j, ipole, nchan
      logical passed, anypass

      nchan = mapconfig(0)
      mb_nk = 0
      mb_kk = 0
      do i = 1, mb_ndim
         mb_r(i) = r(i)
      enddo
      mb_nr = mb_ndim
      wout = 0d0
      istat = 0
      do j = 1, nchan
         alpha(j) = 0d0
      enddo
      ipole = mincfig
      wps = 1d0
      call x_to_f_arg(mb_ndim, ipole, mincfig, maxcfig, mb_ninvar,
     &     wps, xdum, pgen)
      mb_wps = wps
      do i = 1, nexternal
         do j = 0, 3
            pout(j,i) = pgen(j,i)
         enddo
      enddo
      if (pgen(0,1) .lt. 0d0) then
         istat = 2
         goto 900
      endif

      if (mb_grouped .eq. 1) then
c        PDF weights of every (IPROC, IMIRROR) of this config (one cut
c        evaluation, cached, as in auto_dsig.f's DSIG)
         nk = 0
         sumsel = 0d0
         anypass = .false.
c        cutspassed is read (stale) by cuts.f's B.W. cut: reset it with
c        cutsdone so that the result never depends on the previous point
         cutsdone = .false.
         cutspassed = .false.
         do i = 1, maxsproc
            if (confsub(i, mb_ic) .ne. 0) then
               do j = 1, 2
                  if (j.eq.1 .or. mirrorprocs(i)) then
                     nk = nk + 1
                     mb_kproc(nk) = i
                     mb_kmir(nk) = j
                     mb_kf(nk) = 0d0
                     sel(nk) = mb_dsigproc(pgen, i, j, 1d0, 4, passed)
                     sel(nk) = abs(sel(nk))
                     if (passed) anypass = .true.
                     sumsel = sumsel + sel(nk)
                  endif
               enddo
            endif
         enddo
         mb_nk = nk
         if (.not. anypass) then
            istat = 1
            goto 900
         endif
         if (.not. (sumsel .gt. 0d0)) goto 900
         if (isum .eq. 0) then
            kk = mb_choose(nk, sel, sumsel, usel)
            f = mb_dsig_fresh(pgen, mb_kproc(kk), mb_kmir(kk), wps, 0,
     &           passed)
            if (.not. passed) then
               istat = 1
               goto 900
            endif
            mb_kk = kk
            mb_kf(kk) = abs(f)
            wout = wps*f*sumsel/sel(kk)
            call mb_alpha_for(pgen, mb_kproc(kk), alpha, nchan)
         else
            fsum = 0d0
            do k = 1, nk
               if (sel(k) .gt. 0d0) then
                  f = mb_dsig_fresh(pgen, mb_kproc(k), mb_kmir(k), wps,
     &                 0, passed)
                  if (passed .and. f .ne. 0d0) then
                     mb_kf(k) = abs(f)
                     call mb_alpha_for(pgen, mb_kproc(k), atmp, nchan)
                     do j = 1, nchan
                        alpha(j) = alpha(j) + abs(f)*atmp(j)
                     enddo
                     fsum = fsum + f
                  endif
               endif
            enddo
            wout = wps*fsum
            acc = 0d0
            do j = 1, nchan
               acc = acc + alpha(j)
            enddo
            if (acc .gt. 0d0) then
               do j = 1, nchan
                  alpha(j) = alpha(j)/acc
               enddo
            endif
         endif
      else
c        one subprocess: auto_dsig.f's DSIG does cuts, PDFs, |M|^2, NFACT
c        (=1 from the bridge's own symfact.dat)
         do i = 1, maxamps
            amp2(i) = 0d0
         enddo
         do i = 1, maxflow
            jamp2(i) = 0d0
         enddo
         cutspassed = .false.
         f = dsig(pgen, wps, 0)
         if (.not. cutspassed .and. f .eq. 0d0) then
            istat = 1
            goto 900
         endif
         wout = wps*f
         mb_nk = 1
         mb_kk = 1
         mb_kproc(1) = 1
         mb_kmir(1) = 1
         mb_kf(1) = abs(f)
         call mb_alpha_for(pgen, 1, alpha, nchan)
      endif

 900  continue
c     rows of alpha must sum to 1: uniform where no weight is known
      acc = 0d0
      do j = 1, nchan
         acc = acc + alpha(j)
      enddo
      if (.not. (acc .gt. 0.5d0)) then
         do j = 1, nchan
            alpha(j) = 1d0/dble(nchan)
         enddo
      endif
      end


      subroutine mb_f_diag_sde2(p, nchan, vmg5, vmine)
     &     bind(C, name='mbx_sde2_weights')
c     Diagnostics (not ABI): unnormalised strategy-2 weights of every
c     config at momenta p: MG5 3.5.7's genps.f get_channel_cut with
c     sde_strat = 2 (vmg5) and the shim's mb_sde2 (vmine).
      use iso_c_binding
      implicit none
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'run.inc'
      integer(c_int) nchan
      real(c_double) p(0:3,nexternal), vmg5(nchan), vmine(nchan)
      double precision get_channel_cut, mb_sde2
      external get_channel_cut, mb_sde2
      integer j, keep
      keep = sde_strat
      sde_strat = 2
      do j = 1, nchan
         vmg5(j) = get_channel_cut(p, j)
         vmine(j) = mb_sde2(p, j)
      enddo
      sde_strat = keep
      end


c***********************************************************************
c     Per-event details (ABI 2): flavours, mirror, colour flow,
c     helicities, x1/x2, scale, alpha_s, lab momenta, and MadEvent's
c     event record with intermediate resonances.
c***********************************************************************

      subroutine ranmar(rvec)
c     Replacement of MG5's Source/ranmar.f ranmar: numbers from a
c     counter-based stream keyed by a hash of (channel, r) of the point
c     being evaluated (mb_stream_next in mb_mg5_bridge.c), so that every
c     choice MadEvent draws with ranmar (flavour IPSEL in DSIGn, the
c     helicity recorded by SMATRIXn) is a deterministic function of the
c     point. Nothing that changes a weight is drawn with ranmar here.
      implicit none
      double precision rvec
      interface
         function mb_stream_next() bind(C, name='mb_stream_next')
         use iso_c_binding
         real(c_double) mb_stream_next
         end function mb_stream_next
      end interface
      rvec = mb_stream_next()
      end


      real function ran1(idum)
c     Replacement of dsample.f's ran1 (single precision, used by
c     addmothers.f for the colour flow and by unwgt.f for the
c     identical-particle assignment): the same stream as ranmar, in
c     [0, 1) after rounding to single precision.
      implicit none
      integer idum
      interface
         function mb_stream_next() bind(C, name='mb_stream_next')
         use iso_c_binding
         real(c_double) mb_stream_next
         end function mb_stream_next
      end interface
      ran1 = real(mb_stream_next())
      if (ran1 .ge. 1.0) ran1 = nearest(1.0, -1.0)
      end


      subroutine mb_f_event(r, usel, isum, usum, istat, jproc, jmir,
     &     xb, scal, alps, pdg, icol, hel, plab, nlin, ridup, ristup,
     &     rmoth, rcol, rpup, rspin, snq, sscl, spdg, sx, sq, sfac)
     &     bind(C, name='mb_f_event')
c     One point of the frozen channel: the event MadEvent would write.
c       r, usel, isum: as mb_f_point (same point, same choice);
c       usum in [0,1): sum mode only, picks (IPROC, IMIRROR) with
c       probability |DSIG_k| / sum_k |DSIG_k|.
c     Outputs (zero where istat != 0):
c       jproc (1-based IPROC), jmir (1 or 2), xb(2) = x of beam 1 and
c       beam 2, scal = sqrt(max(q2fact)), alps = G^2/4pi (as
c       unwgt.f's write_leshouche), and per external particle in beam
c       order (1 = parton of beam 1, +z) and process order for the
c       final state: pdg, icol(2,.), hel, plab(0:3,.) (lab frame);
c       nlin lines of the LHE record (addmothers.f): ridup, ristup,
c       rmoth(2,.), rcol(2,.), rpup(0:4,.) = (E,px,py,pz,m), rspin;
c       systematics (unwgt.f's <mgrwt> block, only with use_syst,
c       else snq = -1): snq = n_qcd - n_alpsem, sscl = s_scale, per
c       LHE beam b (1 = +z; flipped like write_leshouche) spdg(b) =
c       parton id of the PDF weight (0 = none), sx(b), sq(b) = its x
c       and factorisation scale, sfac = s_rwfact (<totfact>).
      use iso_c_binding
      implicit none
      include 'genps.inc'
      include 'maxconfigs.inc'
      include 'nexternal.inc'
      include 'maxamps.inc'
      include 'message.inc'
      include 'cluster.inc'
      include 'run.inc'
      include 'run_config.inc'
      include 'coupl.inc'
      include 'mb_build.inc'
      include 'mb_shim.inc'
      include 'lhe_event_infos.inc'
      integer mxl
      parameter (mxl=2*nexternal-3)
      real(c_double) r(*), usel, usum, xb(2), scal, alps
      real(c_double) plab(0:3,nexternal), rpup(0:4,mxl)
      integer(c_int) isum, istat, jproc, jmir, nlin
      integer(c_int) pdg(nexternal), icol(2,nexternal), hel(nexternal)
      integer(c_int) ridup(mxl), ristup(mxl), rmoth(2,mxl)
      integer(c_int) rcol(2,mxl), rspin(mxl)
      integer(c_int) snq, spdg(2)
      real(c_double) sscl, sx(2), sq(2), sfac
      integer idup(nexternal,maxproc,maxsproc)
      integer mothup(2,nexternal)
      integer icolup(2,nexternal,maxflow,maxsproc)
      include 'leshouche.inc'
      integer ipsel
      common /subproc/ ipsel
      double precision amp2(maxamps), jamp2(0:maxflow)
      common/to_amps/ amp2, jamp2
      character*101 hel_buf
      common/to_helicity/ hel_buf
      integer imirror, iproc
      common/to_mirror/ imirror, iproc
      integer mapconfig(0:lmaxconfigs), this_config
      common/to_mconfigs/mapconfig, this_config
      double precision pmass(nexternal)
      common/to_mass/ pmass
      double precision stot, m1, m2
      common/to_stot/stot, m1, m2
      double precision mb_dsig_fresh, get_betaz
      real ran1
      external mb_dsig_fresh, get_betaz, ran1
      interface
         subroutine mb_f_point(r, usel, isum, pout, wout, alpha, istat)
     &        bind(C, name='mb_f_point')
         use iso_c_binding
         real(c_double) r(*), usel, pout(0:3,*), wout, alpha(*)
         integer(c_int) isum, istat
         end subroutine mb_f_point
      end interface
      double precision pgen(0:3,nexternal), pp(0:3,nexternal)
      double precision alpha(lmaxconfigs), w, f, acc, tot, xtarget
      double precision ebi(0:3), ebo(0:3), beta, tmp, xbs(2)
      integer i, j, k, kk, nres, line, save_imir, save_iproc, mb_choose
      logical passed, flip

      istat = 0
      jproc = 0
      jmir = 0
      snq = -1
      sscl = 0d0
      sfac = 0d0
      do j = 1, 2
         spdg(j) = 0
         sx(j) = 0d0
         sq(j) = 0d0
      enddo
      xb(1) = 0d0
      xb(2) = 0d0
      scal = 0d0
      alps = 0d0
      nlin = 0
      do i = 1, nexternal
         pdg(i) = 0
         hel(i) = 0
         do j = 1, 2
            icol(j,i) = 0
         enddo
         do j = 0, 3
            plab(j,i) = 0d0
         enddo
      enddo
      do i = 1, mxl
         ridup(i) = 0
         ristup(i) = 0
         rspin(i) = 0
         do j = 1, 2
            rmoth(j,i) = 0
            rcol(j,i) = 0
         enddo
         do j = 0, 4
            rpup(j,i) = 0d0
         enddo
      enddo

c     the point exactly as mb_evaluate computes it (same choice)
      call mb_f_point(r, usel, isum, pgen, w, alpha, istat)
c     (a point with status 0 but no matrix element evaluated, e.g. all
c     PDF weights zero, has weight 0 and no event: outputs stay zero)
      if (istat .ne. 0 .or. mb_nk .lt. 1) return
      if (mb_grouped .eq. 1 .and. isum .eq. 1) then
c        sum mode: one choice with probability |DSIG_k|/sum|DSIG_k|,
c        then its matrix element again (its flavour, colour, helicity)
         tot = 0d0
         do k = 1, mb_nk
            tot = tot + mb_kf(k)
         enddo
         if (.not. (tot .gt. 0d0)) return
         kk = mb_choose(mb_nk, mb_kf, tot, usum)
         f = mb_dsig_fresh(pgen, mb_kproc(kk), mb_kmir(kk), mb_wps, 0,
     &        passed)
         if (.not. passed) then
            istat = 1
            return
         endif
      else
c        sample mode / ungrouped: the last matrix element evaluated
c        by mb_f_point is the chosen one; its commons are still set
         kk = mb_kk
         if (kk .lt. 1) return
      endif
      jproc = mb_kproc(kk)
      jmir = mb_kmir(kk)

c     momenta as the matrix element saw them (mirror: rotated by pi
c     about x), x of each beam; flip so that particle 1 moves along +z
      do i = 1, nexternal
         do j = 0, 3
            pp(j,i) = pgen(j,i)
         enddo
         if (jmir .eq. 2) then
            pp(2,i) = -pgen(2,i)
            pp(3,i) = -pgen(3,i)
         endif
      enddo
      if (jmir .eq. 2) then
         xbs(1) = xbk(2)
         xbs(2) = xbk(1)
      else
         xbs(1) = xbk(1)
         xbs(2) = xbk(2)
      endif
      flip = .false.
      if (nincoming .eq. 2 .and. pp(3,1) .lt. 0d0) then
         flip = .true.
         do j = 0, 3
            tmp = pp(j,1)
            pp(j,1) = pp(j,2)
            pp(j,2) = tmp
         enddo
      endif

c     identical-particle assignment, particle lines (write_leshouche)
      xtarget = dble(ran1(0))*mb_nsym
      jsym = 1
      do while (xtarget .gt. jsym .and. jsym .lt. mb_nsym)
         jsym = jsym + 1
      enddo
      do i = 1, nexternal
         jpart(1,isym(i,jsym)) = idup(i,ipsel,jproc)
         jpart(2,isym(i,jsym)) = mothup(1,i)
         jpart(3,isym(i,jsym)) = mothup(2,i)
         jpart(4,isym(i,jsym)) = 0
         jpart(5,isym(i,jsym)) = 0
         jpart(6,isym(i,jsym)) = 1
      enddo
      do i = 1, nincoming
         jpart(6,isym(i,jsym)) = -1
      enddo
      read(hel_buf,'(20i5)') (jpart(7,isym(i,jsym)),i=1,nexternal)

c     boost to the lab frame (write_leshouche's construction)
      beta = 0d0
      if (nincoming .eq. 2) then
         if (xbs(1).gt.0d0 .and. xbs(1).le.1d0 .and. xbs(2).gt.0d0
     &        .and. xbs(2).le.1d0) then
            if (lpp(2).ne.0 .and.
     &           (xbs(1).eq.1d0 .or. pmass(1).eq.0d0)) then
               ebi(0) = pp(0,1)/xbs(1)
               ebi(1) = 0d0
               ebi(2) = 0d0
               ebi(3) = dsqrt(ebi(0)**2 - m1**2)
               ebo(0) = ebeam(1)
               ebo(1) = 0d0
               ebo(2) = 0d0
               ebo(3) = dsqrt(ebo(0)**2 - m1**2)
               beta = get_betaz(ebi, ebo)
            else
               ebi(0) = pp(0,2)/xbs(2)
               ebi(1) = 0d0
               ebi(2) = 0d0
               ebi(3) = -1d0*dsqrt(ebi(0)**2 - m2**2)
               ebo(0) = ebeam(2)
               ebo(1) = 0d0
               ebo(2) = 0d0
               ebo(3) = -1d0*dsqrt(ebo(0)**2 - m2**2)
               beta = get_betaz(ebi, ebo)
            endif
         endif
      endif
      do j = 1, nexternal
         call zboost_with_beta(pp(0,j), beta, pb(0,isym(j,jsym)))
         pb(4,isym(j,jsym)) = pmass(j)
      enddo
      if (jmir.eq.2 .and. pmass(1).ne.pmass(2)) then
         pb(4,isym(1,jsym)) = pmass(2)
         pb(4,isym(2,jsym)) = pmass(1)
      endif

c     colour flow (proportional to JAMP2 of the flows compatible with
c     the channel's diagram, icolamp) and resonances: addmothers.f
      jamp2(0) = maxflow
      this_config = mb_ic
      save_imir = imirror
      save_iproc = iproc
      imirror = jmir
      iproc = jproc
      call addmothers(ipsel, jpart, pb, isym, jsym, sscale, aaqcd,
     &     aaqed, buff, npart, jproc, flip)
      imirror = save_imir
      iproc = save_iproc

c     scale and couplings as write_leshouche
      if (q2fact(1).gt.0 .and. q2fact(2).gt.0) then
         scal = sqrt(max(q2fact(1), q2fact(2)))
      else if (q2fact(1).gt.0) then
         scal = sqrt(q2fact(1))
      else if (q2fact(2).gt.0) then
         scal = sqrt(q2fact(2))
      else
         scal = 0d0
      endif
      alps = g*g/4d0/3.1415926d0

c     outputs
      nlin = min(npart, mxl)
      do i = 1, nlin
         ridup(i) = jpart(1,i)
         ristup(i) = jpart(6,i)
         rmoth(1,i) = jpart(2,i)
         rmoth(2,i) = jpart(3,i)
         rcol(1,i) = jpart(4,i)
         rcol(2,i) = jpart(5,i)
         rspin(i) = jpart(7,i)
         do j = 0, 4
            rpup(j,i) = pb(j,i)
         enddo
      enddo
      nres = npart - nexternal
      do i = 1, nexternal
         if (i .le. nincoming) then
            line = i
         else
            line = isym(i,jsym) + nres
         endif
         pdg(i) = jpart(1,line)
         icol(1,i) = jpart(4,line)
         icol(2,i) = jpart(5,line)
         hel(i) = jpart(7,line)
         do j = 0, 3
            plab(j,i) = pb(j,line)
         enddo
      enddo
      xb(1) = xbs(1)
      xb(2) = xbs(2)

c     systematics information as write_leshouche's <mgrwt> block: the
c     commons REWGT filled for the chosen matrix element (one PDF
c     weight per beam: no CKKW clustering history)
      if (use_syst) then
         snq = n_qcd - n_alpsem
         sscl = s_scale
         sfac = s_rwfact
         do j = 1, 2
            k = j
            if (flip) k = 3 - j
            if (n_pdfrw(j).gt.0 .and. abs(lpp(j)).ne.2) then
               spdg(k) = i_pdgpdf(n_pdfrw(j),j)
               sx(k) = s_xpdf(n_pdfrw(j),j)
               sq(k) = s_qpdf(n_pdfrw(j),j)
            endif
         enddo
      endif
      end
