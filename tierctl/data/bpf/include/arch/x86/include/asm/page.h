/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/* tierctl stub for <asm/page.h>: bcc's helpers.h needs PAGE_SIZE (ring buffer sizes). x86-64. */
#ifndef _ASM_X86_PAGE_H
#define _ASM_X86_PAGE_H
#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#endif
