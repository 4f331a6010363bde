/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tierctl stub for <linux/log2.h>: bcc's helpers.h uses roundup_pow_of_two() to size stack
 * trace maps. Constant-folded by clang; no kernel code involved.
 */
#ifndef _LINUX_LOG2_H
#define _LINUX_LOG2_H
#define ilog2(n) ((n) < 2 ? 0 : 63 - __builtin_clzll((unsigned long long)(n)))
#define roundup_pow_of_two(n) \
	((n) < 2 ? 1ULL : 1ULL << (64 - __builtin_clzll((unsigned long long)(n) - 1)))
#endif
