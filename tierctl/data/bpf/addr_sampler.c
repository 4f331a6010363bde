/* SPDX-License-Identifier: Apache-2.0 */
/*
 * addr_sampler.c - counts perf samples per (cgroup, process, data page).
 *
 * Loaded by tierctl/samplers/perf_addr.py through bcc and attached to one perf event per CPU:
 * Intel PEBS mem-loads, AMD IBS op, or the software page-fault event (whose sample address is
 * the faulting address). Reads only the perf sample data (ctx->addr, the sample's data address)
 * and BPF helpers, never kernel structs. Every map is bounded.
 */
#include <uapi/linux/bpf_perf_event.h>
#include "tierctl.h"

#include "tierctl_prog.h"

int tierctl_on_sample(struct bpf_perf_event_data *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	u64 cgroup = bpf_get_current_cgroup_id();
	u64 addr = ctx->addr;
	struct tierctl_key key = {};

	if (tgid == 0 || !tierctl_wanted(tgid, cgroup))
		return 0;
	if (addr == 0 || addr >= TIERCTL_USER_ADDR_END) { /* none, or a kernel address (IBS) */
		tierctl_bump(TIERCTL_CNT_EVENTS);
		tierctl_bump(TIERCTL_CNT_DROP_NO_ADDR);
		return 0;
	}
	key.cgroup = cgroup;
	key.pid = tgid;
	key.flags = TIERCTL_SAMPLE_PERF;
	key.vpn = addr >> TIERCTL_PAGE_SHIFT;
	tierctl_count(&key);
	return 0; /* 0: no perf ring-buffer record (none is read) */
}
