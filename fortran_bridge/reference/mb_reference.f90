! mb_reference.f90 — the project's reference process behind the MadNIS bridge ABI (fortran_bridge/madnis_bridge.h).
!
!   e+ e- -> gamma*/Z -> mu+ mu-, tree level, massless fermions, with a flat "beam spectrum" in s on
!   [40^2, 160^2] GeV^2 and the cut |cos theta| < 0.9 (theta = angle between e- and mu- in the c.m. frame).
!   Two channels: 0 = photon-like mapping of s (density ~ 1/s), 1 = Z-like Breit-Wigner mapping of s.
!   r(1) -> s, r(2) -> cos theta = 2 r(2) - 1, r(3) -> phi = 2 pi r(3).  n_dims = 3.
!   weight = L(s) |M|^2/(2s) dPhi_2 / g_channel in pb (no channel weight); alpha = SDE-style prior.
!
! The physics, the parameters and the exact cross section are documented (and re-implemented independently) in
! madnis_plugin/bridge/reference_physics.py; keep the parameters below in sync with it.
!
! Evaluation is deterministic and uses no random numbers.  The library keeps a little global state (initialised
! flag, sde strategy, last error) and is not re-entrant, like the MG5 libraries that share the ABI; unlike them its
! channel is not frozen: any call may use any channel.
!
! Test hooks (only when the environment variable MADNIS_REFERENCE_TEST_HOOKS=1 at mb_init):
!   channel -1: Fortran STOP (the process exits), -2: abort() (SIGABRT), -3: returns MB_ERR_STOP as a shim that
!   intercepted a STOP would, -4: sleeps 60 s (a hung library).
!
! Event details (ABI 2): e+ e- beams with the flat spectrum as a symmetric beam-energy spread (x1 = x2 = sqrt(s)/
! SQRTS_MAX, ebeam = SQRTS_MAX/2): the lab frame is the c.m. frame; no colour; SCALUP = sqrt(s); no strong
! coupling (AQCDUP = -1); helicities chosen with probability |M_hel|^2 / sum |M|^2 from a hash of (channel, r)
! (Lehmer chain over the bit patterns of r, see point_u), the same helicity amplitudes as the weight.
module mb_reference_mod
  use, intrinsic :: iso_c_binding
  use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
  implicit none
  private

  integer(c_int), parameter, public :: MB_ABI_VERSION_F = 2
  integer(c_int), parameter, public :: MB_OK = 0, MB_ERR_INIT = 1, MB_ERR_CHANNEL = 2, MB_ERR_INPUT = 3, &
                                       MB_ERR_STOP = 4, MB_ERR_INTERNAL = 5
  integer(c_int), parameter, public :: MB_POINT_OK = 0, MB_POINT_CUT = 1, MB_POINT_FAILED_MAPPING = 2, &
                                       MB_POINT_NONFINITE = 3, MB_POINT_ERROR = 4

  integer, parameter, public :: N_DIMS = 3, N_EXTERNAL = 4, N_INCOMING = 2, N_CHANNELS = 2

  real(c_double), parameter, public :: PI = 3.14159265358979323846264338327950288d0
  ! Standard-Model parameters (MG5 sm defaults, G_mu scheme)
  real(c_double), parameter, public :: MZ = 91.188d0, WZ = 2.441404d0, AEWM1 = 132.507d0, GF = 1.16639d-5
  ! beam spectrum range and cut
  real(c_double), parameter, public :: SQRTS_MIN = 40d0, SQRTS_MAX = 160d0, COS_CUT = 0.9d0
  real(c_double), parameter, public :: CONV_PB = 0.389379d9

  ! state
  logical, public :: initialised = .false.
  logical, public :: test_hooks = .false.
  integer(c_int), public :: sde = 1
  character(len=1024), public :: last_error = ''
  integer, public :: last_error_len = 0
  ! derived couplings
  real(c_double), public :: alpha_em, e4, sw2, g_hel(2), s_min, s_max, m2, mg, y_min, y_max

  public :: set_error, derive_parameters, evaluate_point, event_point, event_points, check_points, check_ready

contains

  subroutine set_error(msg)
    character(len=*), intent(in) :: msg
    last_error = msg
    last_error_len = min(len(msg), len(last_error))
  end subroutine set_error

  subroutine derive_parameters()
    real(c_double) :: mw2, swcw
    alpha_em = 1d0 / AEWM1
    e4 = (4d0 * PI * alpha_em)**2
    mw2 = MZ**2 / 2d0 + sqrt(MZ**4 / 4d0 - alpha_em * PI * MZ**2 / (GF * sqrt(2d0)))
    sw2 = 1d0 - mw2 / MZ**2
    swcw = sqrt(sw2 * (1d0 - sw2))
    g_hel(1) = (-0.5d0 + sw2) / swcw   ! left-handed Z coupling of e and mu
    g_hel(2) = sw2 / swcw              ! right-handed
    s_min = SQRTS_MIN**2
    s_max = SQRTS_MAX**2
    m2 = MZ * MZ
    mg = MZ * WZ
    y_min = atan((s_min - m2) / mg)
    y_max = atan((s_max - m2) / mg)
  end subroutine derive_parameters

  ! One phase-space point: r(3) in [0,1], channel 0/1 -> momenta(4,4), weight, alpha(2), status.
  subroutine evaluate_point(channel, r, p, weight, alpha, status)
    integer(c_int), intent(in) :: channel
    real(c_double), intent(in) :: r(N_DIMS)
    real(c_double), intent(out) :: p(0:3, N_EXTERNAL), weight, alpha(N_CHANNELS)
    integer(c_int), intent(out) :: status
    real(c_double) :: s, jac, y, c, sint, phi, e, nx, ny, nz, fac, eta, msq, s_gam, s_z, s_tot, a_gam, tot
    complex(c_double_complex) :: dz, a_z
    integer :: l1, l2

    ! s mapping
    if (channel == 0) then
      s = s_min * (s_max / s_min)**r(1)
      jac = s * log(s_max / s_min)
    else
      y = y_min + r(1) * (y_max - y_min)
      s = m2 + mg * tan(y)
      jac = (y_max - y_min) * ((s - m2)**2 + mg * mg) / mg
    end if
    ! angles
    c = 2d0 * r(2) - 1d0
    sint = sqrt(max(0d0, (1d0 - c) * (1d0 + c)))
    phi = 2d0 * PI * r(3)
    ! momenta in the c.m. frame: e+ along +z, e- along -z; mu- at angle theta to the e- direction
    e = 0.5d0 * sqrt(s)
    nx = sint * cos(phi)
    ny = sint * sin(phi)
    nz = -c
    p(:, 1) = (/ e, 0d0, 0d0, e /)
    p(:, 2) = (/ e, 0d0, 0d0, -e /)
    p(:, 3) = (/ e, -e * nx, -e * ny, -e * nz /)
    p(:, 4) = (/ e, e * nx, e * ny, e * nz /)
    ! helicity sums
    dz = cmplx(s - m2, mg, kind=c_double_complex)
    a_gam = 1d0 / s
    s_gam = 0d0
    s_z = 0d0
    s_tot = 0d0
    do l1 = 1, 2
      do l2 = 1, 2
        if (l1 == l2) then
          eta = 1d0
        else
          eta = -1d0
        end if
        fac = (1d0 + eta * c)**2
        a_z = g_hel(l1) * g_hel(l2) / dz
        s_gam = s_gam + a_gam * a_gam * fac
        s_z = s_z + (real(a_z)**2 + aimag(a_z)**2) * fac
        s_tot = s_tot + ((a_gam + real(a_z))**2 + aimag(a_z)**2) * fac
      end do
    end do
    msq = e4 * s * s * s_tot / 4d0
    ! L(s) * jac * |M|^2/(2s) * (4 pi)/(32 pi^2)
    weight = CONV_PB / (s_max - s_min) * jac * msq / (2d0 * s) / (8d0 * PI)
    ! prior channel weights
    if (sde == 1) then
      alpha(1) = s_gam
      alpha(2) = s_z
    else
      alpha(1) = 1d0 / (s * s)
      alpha(2) = 1d0 / ((s - m2)**2 + mg * mg)
    end if
    tot = alpha(1) + alpha(2)
    alpha = alpha / tot
    status = MB_POINT_OK
    if (.not. (ieee_is_finite(weight) .and. ieee_is_finite(alpha(1)) .and. ieee_is_finite(alpha(2)))) then
      status = MB_POINT_NONFINITE
      weight = 0d0
      alpha = 0.5d0
    else if (abs(c) > COS_CUT) then
      status = MB_POINT_CUT
      weight = 0d0
    end if
  end subroutine evaluate_point

  ! Uniform number in (0, 1) from (salt, channel, bit patterns of r): a Lehmer (Park-Miller) chain modulo the prime
  ! 2^31 - 1 over the 16-bit pieces of each r, no integer overflow (products < 2^47). Deterministic, independent
  ! of the physics for uniformly distributed r.
  function point_u(salt, channel, r) result(u)
    integer, intent(in) :: salt
    integer(c_int), intent(in) :: channel
    real(c_double), intent(in) :: r(N_DIMS)
    real(c_double) :: u
    integer(c_int64_t), parameter :: MP = 2147483647_c_int64_t, AM = 48271_c_int64_t
    integer(c_int64_t) :: h, bits
    integer :: j, k
    h = mod(int(salt, c_int64_t) * 7919_c_int64_t + int(channel, c_int64_t) + 12345_c_int64_t, MP)
    do j = 1, N_DIMS
      bits = transfer(r(j) + 0d0, bits)
      do k = 0, 3
        h = mod(h * AM + ibits(bits, 16 * k, 16) + 1_c_int64_t, MP)
      end do
    end do
    do k = 1, 4
      h = mod(h * AM, MP)
    end do
    if (h == 0) h = 1
    u = real(h, c_double) / real(MP, c_double)
  end function point_u

  ! Validate a call (channels in range, r in [0,1]); rc = MB_OK or an error code with the message set.
  subroutine check_points(what, n, channels, r, rc)
    character(len=*), intent(in) :: what
    integer(c_int), intent(in) :: n, channels(n)
    real(c_double), intent(in) :: r(N_DIMS, n)
    integer(c_int), intent(out) :: rc
    character(len=160) :: buf
    integer :: k, j
    rc = MB_OK
    do k = 1, n
      if (channels(k) < 0 .or. channels(k) >= N_CHANNELS) then
        write (buf, '(a,a,i0,a,i0,a,i0,a)') what, ': channel ', channels(k), ' at point ', k - 1, &
          ' out of range [0, ', N_CHANNELS, ')'
        call set_error(trim(buf))
        rc = MB_ERR_CHANNEL
        return
      end if
      do j = 1, N_DIMS
        if (.not. (r(j, k) >= 0d0 .and. r(j, k) <= 1d0)) then
          write (buf, '(a,a,i0,a,i0,a,es23.16e3,a)') what, ': r[', k - 1, '][', j - 1, '] =', r(j, k), &
            ' outside [0, 1]'
          call set_error(trim(buf))
          rc = MB_ERR_INPUT
          return
        end if
      end do
    end do
  end subroutine check_points

  ! Event details of one point (see the header comment): status, x1 = x2, scale, helicities, lab momenta (= c.m.).
  subroutine event_point(channel, r, status, x12, scale, hel, p)
    integer(c_int), intent(in) :: channel
    real(c_double), intent(in) :: r(N_DIMS)
    integer(c_int), intent(out) :: status, hel(N_EXTERNAL)
    real(c_double), intent(out) :: x12, scale, p(0:3, N_EXTERNAL)
    real(c_double) :: weight, alpha(N_CHANNELS), s, c, w(4), tot, u, acc, fac
    complex(c_double_complex) :: dz, a_z
    integer :: l1, l2, k, pick
    ! helicity of (e+, e-) for electron chirality l1 (1 = L, 2 = R), same for (mu+, mu-)
    integer, parameter :: HA(2) = (/ 1, -1 /), HF(2) = (/ -1, 1 /)

    call evaluate_point(channel, r, p, weight, alpha, status)
    hel = 0
    x12 = 0d0
    scale = 0d0
    if (status /= MB_POINT_OK) then
      p = 0d0
      return
    end if
    s = (p(0, 1) + p(0, 2))**2
    c = -p(3, 4) / p(0, 4)
    x12 = sqrt(s) / SQRTS_MAX
    scale = sqrt(s)
    dz = cmplx(s - m2, mg, kind=c_double_complex)
    k = 0
    do l1 = 1, 2
      do l2 = 1, 2
        k = k + 1
        if (l1 == l2) then
          fac = (1d0 + c)**2
        else
          fac = (1d0 - c)**2
        end if
        a_z = g_hel(l1) * g_hel(l2) / dz
        w(k) = ((1d0 / s + real(a_z))**2 + aimag(a_z)**2) * fac
      end do
    end do
    tot = sum(w)
    u = point_u(1, channel, r) * tot
    acc = 0d0
    pick = 4
    do k = 1, 4
      acc = acc + w(k)
      if (u < acc) then
        pick = k
        exit
      end if
    end do
    do while (w(pick) <= 0d0 .and. pick > 1)
      pick = pick - 1
    end do
    l1 = (pick - 1) / 2 + 1
    l2 = mod(pick - 1, 2) + 1
    hel = (/ HA(l1), HF(l1), HA(l2), HF(l2) /)
  end subroutine event_point

  subroutine check_ready(what, rc, n)
    ! the checks every entry point starts with: mb_init succeeded and (for batch calls) n >= 0
    character(len=*), intent(in) :: what
    integer(c_int), intent(out) :: rc
    integer(c_int), intent(in), optional :: n
    character(len=32) :: buf

    rc = MB_OK
    if (.not. initialised) then
      call set_error(what // ': mb_init was not called (or failed)')
      rc = MB_ERR_INIT
      return
    end if
    if (present(n)) then
      if (n < 0) then
        write (buf, '(i0)') n
        call set_error(what // ': n must be >= 0, got ' // trim(buf))
        rc = MB_ERR_INPUT
      end if
    end if
  end subroutine check_ready

  !> Validate (channels_, r_) of an event call and fill the per-point event data of all n > 0 points
  !> (shared by mb_event_details and mb_event_record).
  subroutine event_points(what, n, channels_, r_, st, x12, sc, hel, p, rc)
    character(len=*), intent(in) :: what
    integer(c_int), intent(in) :: n
    type(c_ptr), intent(in) :: channels_, r_
    integer(c_int), allocatable, intent(out) :: st(:), hel(:, :)
    real(c_double), allocatable, intent(out) :: x12(:), sc(:), p(:, :, :)
    integer(c_int), intent(out) :: rc
    integer(c_int), pointer :: channels(:)
    real(c_double), pointer :: r(:, :)
    integer :: k

    if (.not. (c_associated(channels_) .and. c_associated(r_))) then
      call set_error(what // ': null channels or r')
      rc = MB_ERR_INPUT
      return
    end if
    call c_f_pointer(channels_, channels, (/ n /))
    call c_f_pointer(r_, r, (/ N_DIMS, n /))
    call check_points(what, n, channels, r, rc)
    if (rc /= MB_OK) return
    allocate (x12(n), sc(n), p(0:3, N_EXTERNAL, n), st(n), hel(N_EXTERNAL, n))
    do k = 1, n
      call event_point(channels(k), r(:, k), st(k), x12(k), sc(k), hel(:, k), p(:, :, k))
    end do
  end subroutine event_points

end module mb_reference_mod


function mb_abi_version() result(rc) bind(C, name="mb_abi_version")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  rc = MB_ABI_VERSION_F
end function mb_abi_version


function mb_init(process_dir, sde_strategy, seed) result(rc) bind(C, name="mb_init")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  type(c_ptr), value :: process_dir   ! ignored: the reference process needs no directory
  integer(c_int), value :: sde_strategy, seed
  character(len=16) :: env
  integer :: env_len, env_stat
  character(len=64) :: buf

  if (sde_strategy /= 1 .and. sde_strategy /= 2) then
    write (buf, '(i0)') sde_strategy
    call set_error('mb_init: sde_strategy must be 1 or 2, got ' // trim(buf))
    initialised = .false.
    rc = MB_ERR_INIT
    return
  end if
  sde = sde_strategy
  call derive_parameters()
  env = ''
  call get_environment_variable('MADNIS_REFERENCE_TEST_HOOKS', env, env_len, env_stat)
  test_hooks = (env_stat == 0 .and. trim(env) == '1')
  initialised = .true.
  call set_error('')
  rc = MB_OK
end function mb_init


function mb_info_sizes(n_dims_, n_external_, n_incoming_, n_channels_, n_subprocesses_, &
                                       sde_strategy_) result(rc) bind(C, name="mb_info_sizes")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  type(c_ptr), value :: n_dims_, n_external_, n_incoming_, n_channels_, n_subprocesses_, sde_strategy_
  integer(c_int), pointer :: ip

  call check_ready('mb_info_sizes', rc)
  if (rc /= MB_OK) return
  if (.not. (c_associated(n_dims_) .and. c_associated(n_external_) .and. c_associated(n_incoming_) .and. &
             c_associated(n_channels_) .and. c_associated(n_subprocesses_) .and. c_associated(sde_strategy_))) then
    call set_error('mb_info_sizes: null pointer argument')
    rc = MB_ERR_INPUT
    return
  end if
  call c_f_pointer(n_dims_, ip); ip = N_DIMS
  call c_f_pointer(n_external_, ip); ip = N_EXTERNAL
  call c_f_pointer(n_incoming_, ip); ip = N_INCOMING
  call c_f_pointer(n_channels_, ip); ip = N_CHANNELS
  call c_f_pointer(n_subprocesses_, ip); ip = 1
  call c_f_pointer(sde_strategy_, ip); ip = sde
  rc = MB_OK
end function mb_info_sizes


function mb_info_particles(pdg_, masses_, ebeam_, lpp_) result(rc) bind(C, name="mb_info_particles")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  type(c_ptr), value :: pdg_, masses_, ebeam_, lpp_
  integer(c_int), pointer :: pdg(:), lpp(:)
  real(c_double), pointer :: masses(:), ebeam(:)

  call check_ready('mb_info_particles', rc)
  if (rc /= MB_OK) return
  if (.not. (c_associated(pdg_) .and. c_associated(masses_) .and. c_associated(ebeam_) .and. &
             c_associated(lpp_))) then
    call set_error('mb_info_particles: null pointer argument')
    rc = MB_ERR_INPUT
    return
  end if
  call c_f_pointer(pdg_, pdg, (/ N_EXTERNAL /))
  call c_f_pointer(masses_, masses, (/ N_EXTERNAL /))
  call c_f_pointer(ebeam_, ebeam, (/ 2 /))
  call c_f_pointer(lpp_, lpp, (/ 2 /))
  pdg = (/ -11, 11, -13, 13 /)
  masses = 0d0
  ebeam = 0.5d0 * SQRTS_MAX   ! the beam spectrum reaches up to sqrt(s) = SQRTS_MAX
  lpp = 0                     ! no MG5 PDF: the spectrum is the project's own, see reference_physics.py
  rc = MB_OK
end function mb_info_particles


function mb_info_channels(channel_diagram_, channel_group_) result(rc) bind(C, name="mb_info_channels")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  type(c_ptr), value :: channel_diagram_, channel_group_
  integer(c_int), pointer :: diag(:), grp(:)

  call check_ready('mb_info_channels', rc)
  if (rc /= MB_OK) return
  if (.not. (c_associated(channel_diagram_) .and. c_associated(channel_group_))) then
    call set_error('mb_info_channels: null pointer argument')
    rc = MB_ERR_INPUT
    return
  end if
  call c_f_pointer(channel_diagram_, diag, (/ N_CHANNELS /))
  call c_f_pointer(channel_group_, grp, (/ N_CHANNELS /))
  diag = (/ 1, 2 /)   ! diagram 1: photon exchange, diagram 2: Z exchange
  grp = (/ 0, 1 /)    ! no permutation symmetry: one group per channel
  rc = MB_OK
end function mb_info_channels


function mb_evaluate(n, channels_, r_, momenta_, weight_, alpha_, status_) result(rc) bind(C, name="mb_evaluate")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  integer(c_int), value :: n
  type(c_ptr), value :: channels_, r_, momenta_, weight_, alpha_, status_
  integer(c_int), pointer :: channels(:), status(:)
  real(c_double), pointer :: r(:, :), momenta(:, :, :), weight(:), alpha(:, :)
  integer :: k

  call check_ready('mb_evaluate', rc, n)
  if (rc /= MB_OK .or. n == 0) return
  if (.not. (c_associated(channels_) .and. c_associated(r_) .and. c_associated(momenta_) .and. &
             c_associated(weight_) .and. c_associated(alpha_) .and. c_associated(status_))) then
    call set_error('mb_evaluate: null pointer argument')
    rc = MB_ERR_INPUT
    return
  end if
  call c_f_pointer(channels_, channels, (/ n /))
  call c_f_pointer(r_, r, (/ N_DIMS, n /))
  call c_f_pointer(momenta_, momenta, (/ 4, N_EXTERNAL, n /))
  call c_f_pointer(weight_, weight, (/ n /))
  call c_f_pointer(alpha_, alpha, (/ N_CHANNELS, n /))
  call c_f_pointer(status_, status, (/ n /))

  ! test hooks (channels -1..-4, only with test_hooks): they fire where the validation would meet them first
  if (test_hooks) then
    do k = 1, n
      select case (channels(k))
      case (-1)
        stop 'madnis reference library: test hook STOP'
      case (-2)
        call abort()
      case (-3)
        call set_error('STOP intercepted (test hook): madnis reference library')
        rc = MB_ERR_STOP
        return
      case (-4)
        call sleep(60)
        call set_error('test hook: slept 60 s')
        rc = MB_ERR_INTERNAL
        return
      end select
      if (channels(k) < 0 .or. channels(k) >= N_CHANNELS .or. &
          any(.not. (r(:, k) >= 0d0 .and. r(:, k) <= 1d0))) exit
    end do
  end if
  ! validate the whole call before computing anything
  call check_points('mb_evaluate', n, channels, r, rc)
  if (rc /= MB_OK) return

  do k = 1, n
    call evaluate_point(channels(k), r(:, k), momenta(:, :, k), weight(k), alpha(:, k), status(k))
  end do
  rc = MB_OK
end function mb_evaluate


function mb_last_error(buf_, buflen) result(rc) bind(C, name="mb_last_error")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  type(c_ptr), value :: buf_
  integer(c_int), value :: buflen
  character(kind=c_char), pointer :: buf(:)
  integer :: i, ncopy

  rc = last_error_len
  if (.not. c_associated(buf_) .or. buflen <= 0) return
  call c_f_pointer(buf_, buf, (/ buflen /))
  ncopy = min(last_error_len, buflen - 1)
  do i = 1, ncopy
    buf(i) = last_error(i:i)
  end do
  buf(ncopy + 1) = c_null_char
end function mb_last_error


function mb_event_details(n, channels_, r_, iproc_, mirror_, x1x2_, scale_, alphas_, pdg_, icolup_, helicity_, &
                          momenta_lab_, status_) result(rc) bind(C, name="mb_event_details")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  integer(c_int), value :: n
  type(c_ptr), value :: channels_, r_, iproc_, mirror_, x1x2_, scale_, alphas_, pdg_, icolup_, helicity_, &
                        momenta_lab_, status_
  integer(c_int), pointer :: i1(:), i2(:, :), i3(:, :, :)
  real(c_double), pointer :: d1(:), d2(:, :), d3(:, :, :)
  real(c_double), allocatable :: x12(:), sc(:), p(:, :, :)
  integer(c_int), allocatable :: st(:), hel(:, :)
  integer(c_int), parameter :: PDG_REF(N_EXTERNAL) = (/ -11, 11, -13, 13 /)
  integer :: k

  call check_ready('mb_event_details', rc, n)
  if (rc /= MB_OK .or. n == 0) return
  call event_points('mb_event_details', n, channels_, r_, st, x12, sc, hel, p, rc)
  if (rc /= MB_OK) return
  if (c_associated(status_)) then
    call c_f_pointer(status_, i1, (/ n /)); i1 = st
  end if
  if (c_associated(iproc_)) then
    call c_f_pointer(iproc_, i1, (/ n /)); i1 = 0
  end if
  if (c_associated(mirror_)) then
    call c_f_pointer(mirror_, i1, (/ n /)); i1 = 0
  end if
  if (c_associated(x1x2_)) then
    call c_f_pointer(x1x2_, d2, (/ 2, n /))
    d2(1, :) = x12
    d2(2, :) = x12
  end if
  if (c_associated(scale_)) then
    call c_f_pointer(scale_, d1, (/ n /)); d1 = sc
  end if
  if (c_associated(alphas_)) then
    call c_f_pointer(alphas_, d1, (/ n /))
    d1 = merge(-1d0, 0d0, st == MB_POINT_OK)
  end if
  if (c_associated(pdg_)) then
    call c_f_pointer(pdg_, i2, (/ N_EXTERNAL, n /))
    do k = 1, n
      i2(:, k) = merge(PDG_REF, 0 * PDG_REF, st(k) == MB_POINT_OK)
    end do
  end if
  if (c_associated(icolup_)) then
    call c_f_pointer(icolup_, i3, (/ 2, N_EXTERNAL, n /)); i3 = 0
  end if
  if (c_associated(helicity_)) then
    call c_f_pointer(helicity_, i2, (/ N_EXTERNAL, n /)); i2 = hel
  end if
  if (c_associated(momenta_lab_)) then
    call c_f_pointer(momenta_lab_, d3, (/ 4, N_EXTERNAL, n /)); d3 = p
  end if
end function mb_event_details


function mb_event_record_size(max_lines_) result(rc) bind(C, name="mb_event_record_size")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  type(c_ptr), value :: max_lines_
  integer(c_int), pointer :: ip
  call check_ready('mb_event_record_size', rc)
  if (rc /= MB_OK) return
  if (.not. c_associated(max_lines_)) then
    call set_error('mb_event_record_size: null pointer argument')
    rc = MB_ERR_INPUT
    return
  end if
  call c_f_pointer(max_lines_, ip)
  ip = N_EXTERNAL   ! no intermediate lines: the s-channel photon/Z is not written
  rc = MB_OK
end function mb_event_record_size


function mb_event_record(n, channels_, r_, max_lines, n_lines_, idup_, istup_, mothup_, icolup_, pup_, spinup_) &
    result(rc) bind(C, name="mb_event_record")
  use, intrinsic :: iso_c_binding
  use mb_reference_mod
  implicit none
  integer(c_int) :: rc
  integer(c_int), value :: n, max_lines
  type(c_ptr), value :: channels_, r_, n_lines_, idup_, istup_, mothup_, icolup_, pup_, spinup_
  integer(c_int), pointer :: i1(:), i2(:, :), i3(:, :, :)
  real(c_double), pointer :: d3(:, :, :)
  real(c_double), allocatable :: x12(:), sc(:), p(:, :, :)
  integer(c_int), allocatable :: st(:), hel(:, :)
  integer(c_int), parameter :: PDG_REF(N_EXTERNAL) = (/ -11, 11, -13, 13 /), IST(N_EXTERNAL) = (/ -1, -1, 1, 1 /)
  integer :: k, i
  character(len=64) :: buf

  call check_ready('mb_event_record', rc)
  if (rc /= MB_OK) return
  if (n < 0 .or. max_lines < N_EXTERNAL) then
    write (buf, '(a,i0,a,i0)') 'n = ', n, ', max_lines = ', max_lines
    call set_error('mb_event_record: need n >= 0 and max_lines >= mb_event_record_size, got ' // trim(buf))
    rc = MB_ERR_INPUT
    return
  end if
  rc = MB_OK
  if (n == 0) return
  call event_points('mb_event_record', n, channels_, r_, st, x12, sc, hel, p, rc)
  if (rc /= MB_OK) return
  if (c_associated(n_lines_)) then
    call c_f_pointer(n_lines_, i1, (/ n /))
    i1 = merge(N_EXTERNAL, 0, st == MB_POINT_OK)
  end if
  if (c_associated(idup_)) then
    call c_f_pointer(idup_, i2, (/ max_lines, n /))
    i2 = 0
    do k = 1, n
      if (st(k) == MB_POINT_OK) i2(1:N_EXTERNAL, k) = PDG_REF
    end do
  end if
  if (c_associated(istup_)) then
    call c_f_pointer(istup_, i2, (/ max_lines, n /))
    i2 = 0
    do k = 1, n
      if (st(k) == MB_POINT_OK) i2(1:N_EXTERNAL, k) = IST
    end do
  end if
  if (c_associated(mothup_)) then
    call c_f_pointer(mothup_, i3, (/ 2, max_lines, n /))
    i3 = 0
    do k = 1, n
      do i = 1, N_EXTERNAL
        if (st(k) == MB_POINT_OK .and. IST(i) == 1) i3(:, i, k) = (/ 1, 2 /)
      end do
    end do
  end if
  if (c_associated(icolup_)) then
    call c_f_pointer(icolup_, i3, (/ 2, max_lines, n /)); i3 = 0
  end if
  if (c_associated(pup_)) then
    call c_f_pointer(pup_, d3, (/ 5, max_lines, n /))
    d3 = 0d0
    d3(1:4, 1:N_EXTERNAL, :) = p   ! massless: m = 0
  end if
  if (c_associated(spinup_)) then
    call c_f_pointer(spinup_, i2, (/ max_lines, n /))
    i2 = 0
    i2(1:N_EXTERNAL, :) = hel
  end if
end function mb_event_record
