/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tierctl stub for <asm/ptrace.h> on x86-64: the register frame, 21 unsigned longs in the
 * order of the UAPI struct pt_regs (arch/x86/include/uapi/asm/ptrace.h), with the kernel's
 * field names that bcc's PT_REGS_* macros use. It sizes struct bpf_perf_event_data (UAPI),
 * whose sample_period and addr follow it. tierctl's programs do not read registers.
 */
#ifndef _ASM_X86_PTRACE_H
#define _ASM_X86_PTRACE_H
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
};
#endif
