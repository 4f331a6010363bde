/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tierctl stub for <asm/bpf_perf_event.h> on x86-64: as include/uapi/asm-generic/
 * bpf_perf_event.h, the perf program context exports the register frame as bpf_user_pt_regs_t.
 */
#ifndef _TIERCTL_STUB_ASM_BPF_PERF_EVENT_H
#define _TIERCTL_STUB_ASM_BPF_PERF_EVENT_H
#include <asm/ptrace.h>
typedef struct pt_regs bpf_user_pt_regs_t;
#endif
