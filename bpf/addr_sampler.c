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

BPF_HASH(samples, struct tierctl_key, struct tierctl_val, TIERCTL_MAX_ENTRIES);
BPF_PERCPU_ARRAY(counters, u64, TIERCTL_CNT_NR);
BPF_ARRAY(config, u32, TIERCTL_CFG_NR);
BPF_HASH(filter_pids, u32, u8, TIERCTL_MAX_TARGETS);
BPF_HASH(filter_cgroups, u64, u8, TIERCTL_MAX_TARGETS);

static __always_inline void tierctl_bump(int idx)
{
	u64 *c = counters.lookup(&idx);
	if (c)
		*c += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline int tierctl_cfg(int idx)
{
	u32 *v = config.lookup(&idx);
	return v ? *v : 0;
}

/* Is this event one of the targets? Filters off (empty target sets) mean everything. */
static __always_inline int tierctl_wanted(u32 tgid, u64 cgroup)
{
	int by_pid, by_cgroup;

	if (!tierctl_cfg(TIERCTL_CFG_ENABLED))
		return 0;
	by_pid = tierctl_cfg(TIERCTL_CFG_FILTER_PIDS);
	by_cgroup = tierctl_cfg(TIERCTL_CFG_FILTER_CGROUPS);
	if (!by_pid && !by_cgroup)
		return 1;
	if (by_pid && filter_pids.lookup(&tgid))
		return 1;
	if (by_cgroup && filter_cgroups.lookup(&cgroup))
		return 1;
	return 0;
}

int tierctl_on_sample(struct bpf_perf_event_data *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	u64 cgroup = bpf_get_current_cgroup_id();
	u64 addr = ctx->addr;
	struct tierctl_key key = {};
	struct tierctl_val zero = {};
	struct tierctl_val *val;

	if (tgid == 0 || !tierctl_wanted(tgid, cgroup))
		return 0;
	tierctl_bump(TIERCTL_CNT_EVENTS);
	if (addr == 0 || addr >= TIERCTL_USER_ADDR_END) { /* none, or a kernel address (IBS) */
		tierctl_bump(TIERCTL_CNT_DROP_NO_ADDR);
		return 0;
	}
	key.cgroup = cgroup;
	key.pid = tgid;
	key.flags = TIERCTL_SAMPLE_PERF;
	key.vpn = addr >> TIERCTL_PAGE_SHIFT;
	val = samples.lookup_or_try_init(&key, &zero);
	if (val)
		__sync_fetch_and_add(&val->count, 1);
	else
		tierctl_bump(TIERCTL_CNT_DROP_MAP_FULL);
	return 0; /* 0: no perf ring-buffer record (none is read) */
}
