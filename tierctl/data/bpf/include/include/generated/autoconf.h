/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/* tierctl stub: the only kernel options bcc's helpers.h looks at for our programs. */
#ifndef _TIERCTL_STUB_AUTOCONF_H
#define _TIERCTL_STUB_AUTOCONF_H
#define CONFIG_BPF_SYSCALL 1
#define CONFIG_X86_64 1
#endif
