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
      double precision mb_dsigproc, dsig
      external mb_dsigproc, dsig
      double precision pgen(0:3,nexternal+1), xdum(maxinvar)
      double precision wps, sel(2*maxsproc), sumsel, f, fsum, acc
      double precision atmp(lmaxconfigs)
      integer kproc(2*maxsproc), kmir(2*maxsproc), nk, k, kk
      integer j, ipole, nchan
      logical passed, anypass

      nchan = mapconfig(0)
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
                     kproc(nk) = i
                     kmir(nk) = j
                     sel(nk) = mb_dsigproc(pgen, i, j, 1d0, 4, passed)
                     sel(nk) = abs(sel(nk))
                     if (passed) anypass = .true.
                     sumsel = sumsel + sel(nk)
                  endif
               enddo
            endif
         enddo
         if (.not. anypass) then
            istat = 1
            goto 900
         endif
         if (.not. (sumsel .gt. 0d0)) goto 900
         if (isum .eq. 0) then
            kk = nk
            acc = 0d0
            do k = 1, nk
               acc = acc + sel(k)
               if (usel*sumsel .lt. acc) then
                  kk = k
                  goto 100
               endif
            enddo
 100        continue
            do while (sel(kk) .le. 0d0 .and. kk .gt. 1)
               kk = kk - 1
            enddo
            cutsdone = .false.
            cutspassed = .false.
            f = mb_dsigproc(pgen, kproc(kk), kmir(kk), wps, 0, passed)
            if (.not. passed) then
               istat = 1
               goto 900
            endif
            wout = wps*f*sumsel/sel(kk)
            call mb_alpha_for(pgen, kproc(kk), alpha, nchan)
         else
            fsum = 0d0
            do k = 1, nk
               if (sel(k) .gt. 0d0) then
                  cutsdone = .false.
                  cutspassed = .false.
                  f = mb_dsigproc(pgen, kproc(k), kmir(k), wps, 0,
     &                 passed)
                  if (passed .and. f .ne. 0d0) then
                     call mb_alpha_for(pgen, kproc(k), atmp, nchan)
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
