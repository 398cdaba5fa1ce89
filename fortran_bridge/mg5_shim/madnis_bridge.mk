# madnis_bridge: build the bridge library (madnis_bridge.h) for one MG5_aMC 3.5.x SubProcesses/P* directory.
#
#   make -C <P dir> -f <this file> SHIM_DIR=<folder of this file> BUILD=madnis_bridge/build OUT=<lib.so>
#
# madnis_plugin/bridge/mg5build.py runs it after writing into $(BUILD): mb_build.inc (grouped flag, number of
# good-helicity flags), mb_mirrorprocs.inc (MIRRORPROCS, all false when ungrouped), mb_dispatch.f (IPROC ->
# DSIG<n>) and driver_subs.f (driver.f without its PROGRAM).
#
# The P directory's own makefile is included for MadEvent's compiler flags and link line (FFLAGS from
# Source/make_opts, LINKLIBS, LIBS, MATRIX, PROCESS, LDFLAGS, BIASDEPENDENCIES), so the library is compiled and
# linked exactly like P/madevent. Objects go to $(BUILD); nothing is written into the P directory itself
# (the MG5 library rules in the included makefile may rebuild ../../lib/*.a, as MadEvent's own make would).
# libdsample is used through a private copy whose ntuple, ranmar and ran1 are weakened, so the shim's replace them.

include makefile

SHIM_DIR ?= $(error SHIM_DIR not set)
BUILD ?= madnis_bridge/build
OUT ?= $(BUILD)/libmadnis_mg5.so
OBJCOPY ?= objcopy
MB_CC ?= gcc

MB_FFLAGS = $(FFLAGS) -fPIC -J$(BUILD)
MB_INC = -I. -I../../Source/ -I../../Source/PDF/gammaUPC
MB_CFLAGS = -O2 -fPIC -std=gnu99 -Wall -Wno-unused-result -Wno-format-truncation -I$(SHIM_DIR)/..

MB_PROCESS = $(addprefix $(BUILD)/,$(filter-out driver.o,$(PROCESS)))
MB_MATRIX = $(addprefix $(BUILD)/,$(MATRIX))
MB_OWN = $(BUILD)/driver_subs.o $(BUILD)/mb_dispatch.o $(BUILD)/mb_mg5_shim.o $(BUILD)/mb_mg5_bridge.o
MB_OBJS = $(MB_PROCESS) $(MB_MATRIX) $(MB_OWN)
MB_DSAMPLE = $(BUILD)/libdsample_mb.a
MB_LINKLIBS = $(subst -ldsample,$(MB_DSAMPLE),$(LINKLIBS))

.PHONY: madnis_bridge
madnis_bridge: $(OUT)

$(OUT): $(MB_OBJS) $(MB_DSAMPLE) $(LIBS)
	$(FC) -shared -o $@.tmp $(MB_OBJS) $(MB_LINKLIBS) $(LDFLAGS) $(BIASDEPENDENCIES) \
	    -Wl,-Bsymbolic -Wl,--no-undefined
	mv -f $@.tmp $@

$(MB_DSAMPLE): $(LIBDIR)libdsample.$(libext)
	@test "$(libext)" = "a" || (echo "madnis_bridge: needs static MG5 libraries (libext=a), got $(libext)"; exit 1)
	cp -f $< $@.tmp
	$(OBJCOPY) --weaken-symbol=ntuple_ --weaken-symbol=ranmar_ --weaken-symbol=ran1_ $@.tmp
	mv -f $@.tmp $@

$(MB_MATRIX): $(BUILD)/%.o: %.f
	$(FC) $(MB_FFLAGS) $(MATRIX_FLAG) -c $< -o $@ $(MB_INC)

$(BUILD)/%.o: %.f
	$(FC) $(MB_FFLAGS) -c $< -o $@ $(MB_INC)

$(BUILD)/%.o: $(BUILD)/%.f $(BUILD)/mb_build.inc
	$(FC) $(MB_FFLAGS) -c $< -o $@ -I$(BUILD) $(MB_INC)

$(BUILD)/mb_mg5_shim.o: $(SHIM_DIR)/mb_mg5_shim.f $(SHIM_DIR)/mb_shim.inc $(BUILD)/mb_build.inc
	$(FC) $(MB_FFLAGS) -c $< -o $@ -I$(BUILD) -I$(SHIM_DIR) $(MB_INC)

$(BUILD)/mb_mg5_bridge.o: $(SHIM_DIR)/mb_mg5_bridge.c $(SHIM_DIR)/../madnis_bridge.h
	$(MB_CC) $(MB_CFLAGS) -c $< -o $@
