/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fault_sampler.c - counts user page faults per (cgroup, process, page) and migrations per reason.
 *
 * Loaded by tierctl/samplers/fault.py through bcc. Reads only tracepoint arguments and BPF
 * helpers (stable ABI), never kernel structs. Every map is bounded.
 */
#include <linux/migrate_mode.h> /* enum migrate_mode, named by mm_migrate_pages' format */
#include "tierctl.h"

BPF_HASH(samples, struct tierctl_key, struct tierctl_val, TIERCTL_MAX_ENTRIES);
BPF_PERCPU_ARRAY(counters, u64, TIERCTL_CNT_NR);
BPF_ARRAY(config, u32, TIERCTL_CFG_NR);
BPF_HASH(filter_pids, u32, u8, TIERCTL_MAX_TARGETS);
BPF_HASH(filter_cgroups, u64, u8, TIERCTL_MAX_TARGETS);
BPF_ARRAY(migrations, struct tierctl_migrate_val, TIERCTL_MR_SLOTS);

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

static __always_inline void tierctl_count(struct tierctl_key *key)
{
	struct tierctl_val zero = {};
	struct tierctl_val *val;

	tierctl_bump(TIERCTL_CNT_EVENTS);
	val = samples.lookup_or_try_init(key, &zero);
	if (val)
		__sync_fetch_and_add(&val->count, 1);
	else
		tierctl_bump(TIERCTL_CNT_DROP_MAP_FULL);
}

TRACEPOINT_PROBE(exceptions, page_fault_user)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	u64 cgroup = bpf_get_current_cgroup_id();
	struct tierctl_key key = {};

	if (!tierctl_wanted(tgid, cgroup))
		return 0;
	key.cgroup = cgroup;
	key.pid = tgid;
	key.flags = (args->error_code & TIERCTL_SAMPLE_FAULT_MASK) | TIERCTL_SAMPLE_FAULT;
	key.vpn = args->address >> TIERCTL_PAGE_SHIFT;
	tierctl_count(&key);
	return 0;
}

#ifdef TIERCTL_WITH_MIGRATE
TRACEPOINT_PROBE(migrate, mm_migrate_pages)
{
	int slot = args->reason;
	struct tierctl_migrate_val *m;

	if (slot < 0 || slot >= TIERCTL_MR_SLOTS)
		slot = TIERCTL_MR_SLOTS - 1;
	m = migrations.lookup(&slot);
	if (!m)
		return 0;
	__sync_fetch_and_add(&m->calls, 1);
	__sync_fetch_and_add(&m->succeeded, args->succeeded);
	__sync_fetch_and_add(&m->failed, args->failed);
	return 0;
}
#endif
