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
module mb_reference_mod
  use, intrinsic :: iso_c_binding
  use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
  implicit none
  private

  integer(c_int), parameter, public :: MB_ABI_VERSION_F = 1
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

  public :: set_error, derive_parameters, evaluate_point

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

  if (.not. initialised) then
    call set_error('mb_info_sizes: mb_init was not called (or failed)')
    rc = MB_ERR_INIT
    return
  end if
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

  if (.not. initialised) then
    call set_error('mb_info_particles: mb_init was not called (or failed)')
    rc = MB_ERR_INIT
    return
  end if
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

  if (.not. initialised) then
    call set_error('mb_info_channels: mb_init was not called (or failed)')
    rc = MB_ERR_INIT
    return
  end if
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
  integer :: k, j
  character(len=128) :: buf

  if (.not. initialised) then
    call set_error('mb_evaluate: mb_init was not called (or failed)')
    rc = MB_ERR_INIT
    return
  end if
  if (n < 0) then
    write (buf, '(i0)') n
    call set_error('mb_evaluate: n must be >= 0, got ' // trim(buf))
    rc = MB_ERR_INPUT
    return
  end if
  if (n == 0) then
    rc = MB_OK
    return
  end if
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

  ! validate the whole call before computing anything
  do k = 1, n
    if (channels(k) < 0 .or. channels(k) >= N_CHANNELS) then
      if (test_hooks .and. channels(k) < 0 .and. channels(k) >= -4) then
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
      end if
      write (buf, '(a,i0,a,i0,a,i0,a)') 'mb_evaluate: channel ', channels(k), ' at point ', k - 1, &
        ' out of range [0, ', N_CHANNELS, ')'
      call set_error(trim(buf))
      rc = MB_ERR_CHANNEL
      return
    end if
    do j = 1, N_DIMS
      if (.not. (r(j, k) >= 0d0 .and. r(j, k) <= 1d0)) then
        write (buf, '(a,i0,a,i0,a,es23.16e3,a)') 'mb_evaluate: r[', k - 1, '][', j - 1, '] =', r(j, k), &
          ' outside [0, 1]'
        call set_error(trim(buf))
        rc = MB_ERR_INPUT
        return
      end if
    end do
  end do

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
