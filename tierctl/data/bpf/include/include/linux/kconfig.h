/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tierctl stub: bcc force-includes ./include/linux/kconfig.h. The real one pulls in the
 * kernel's generated autoconf.h; tracepoint and perf programs that read no kernel struct need
 * only the options bcc's helpers.h checks, set in generated/autoconf.h here.
 */
#ifndef _TIERCTL_STUB_KCONFIG_H
#define _TIERCTL_STUB_KCONFIG_H
#include <generated/autoconf.h>
#endif
