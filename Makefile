# Builds and installs the STK programs under distinct names:
#
#   stkd, stepmon                  the daemon and the host monitor
#   stk-publish, stk-subscribe, stk-simple-name-lookup, ...
#                                  the examples (go run ./examples/NAME in the tree)
#   libstk.so, stk.h               the C library and its header (make install-lib)
#
#   make                           build them into $(BUILD)
#   make install                   install the programs into $(DESTDIR)$(BINDIR) and,
#                                  unless one is there, examples/stkd.cfg as
#                                  $(DESTDIR)$(SYSCONFDIR)/stk/stkd.cfg
#   make install-lib               libstk.so into $(LIBDIR), stk.h into $(INCLUDEDIR)
#   make install-service           the systemd units into $(DESTDIR)$(UNITDIR), with
#                                  $(BINDIR) and $(SYSCONFDIR) filled in
#   make uninstall                 removes what install, install-lib and install-service
#                                  installed (not the config file)
#   make clean
#
# `go install ./...` is not the way: it installs the examples under generic
# names such as `publish`, and the harnesses of bench/ too. (The C library's
# package, bindings/c, builds only with -tags stk_cshared, as `make lib`
# does, so it is not installed as a program.)
#
# PREFIX (/usr/local), DESTDIR (for packaging), BINDIR, LIBDIR, INCLUDEDIR,
# SYSCONFDIR (/etc), UNITDIR (/etc/systemd/system) and GO can be set on the
# command line: make install PREFIX=/opt/stk.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
SYSCONFDIR ?= /etc
UNITDIR    ?= /etc/systemd/system
DESTDIR    ?=
GO         ?= go
BUILD      ?= bin
# -buildvcs=auto records the git revision for --version even where GOFLAGS
# turns it off; -trimpath keeps build paths out of the binaries.
GOBUILD     = $(GO) build -trimpath -buildvcs=auto
# go-nvml (stepmon's GPU collector) declares deprecated NVML functions:
# hundreds of harmless C compiler warnings otherwise.
CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations
export CGO_CFLAGS

EXAMPLES = publish subscribe simple_name_lookup simple_name_registration simple_client \
           simple_server monitored_service raw_multicast_bridge throughput_test
PROGRAMS = stkd stepmon $(addprefix stk-,$(subst _,-,$(EXAMPLES)))
UNITS    = stkd.service stepmon.service

.PHONY: all build lib install install-lib install-service uninstall clean FORCE

all: build

build: $(addprefix $(BUILD)/,$(PROGRAMS))

# go build decides what is stale, so it is always asked.
$(BUILD)/stkd $(BUILD)/stepmon: FORCE
	@mkdir -p $(BUILD)
	$(GOBUILD) -o $@ ./$(notdir $@)

$(BUILD)/stk-%: FORCE
	@mkdir -p $(BUILD)
	$(GOBUILD) -o $@ ./examples/$(subst -,_,$*)

lib: FORCE
	$(MAKE) -C bindings/c lib BUILD=$(abspath $(BUILD))

install: build
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(addprefix $(BUILD)/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(SYSCONFDIR)/stk
	test -e $(DESTDIR)$(SYSCONFDIR)/stk/stkd.cfg || install -m 0644 examples/stkd.cfg $(DESTDIR)$(SYSCONFDIR)/stk/stkd.cfg

install-lib: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)
	install -m 0755 $(BUILD)/libstk.so $(DESTDIR)$(LIBDIR)/libstk.so
	install -m 0644 $(BUILD)/stk.h $(DESTDIR)$(INCLUDEDIR)/stk.h

install-service:
	install -d $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
		sed -e 's|/usr/local/bin|$(BINDIR)|g' -e 's|/etc/stk|$(SYSCONFDIR)/stk|g' examples/systemd/$$u \
			> $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	@echo "now: systemctl daemon-reload && systemctl enable --now stkd stepmon"

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(PROGRAMS))
	rm -f $(DESTDIR)$(LIBDIR)/libstk.so $(DESTDIR)$(INCLUDEDIR)/stk.h
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))

clean:
	rm -rf $(BUILD)

FORCE:
