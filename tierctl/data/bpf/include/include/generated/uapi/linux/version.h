/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tierctl stub. bcc stores LINUX_VERSION_CODE in the object's "version" section; the kernel
 * checks it only for kprobes on kernels before 5.0, never for tracepoint or perf programs.
 * tierctl's loader passes -DLINUX_VERSION_CODE=<running kernel> when it uses this tree.
 */
#ifndef LINUX_VERSION_CODE
#define LINUX_VERSION_CODE 0
#endif
#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))
