/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tierctl_prog.h - the maps and helpers every tierctl BPF program has (inlined by the loader
 * after tierctl.h). Bounded maps only; reads nothing but its arguments and BPF helpers.
 */
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

static __always_inline u32 tierctl_cfg(int idx)
{
	u32 *v = config.lookup(&idx);
	return v ? *v : 0;
}

/* Is this event one of the targets, and (when the watchdog lowered the rate) drawn for the
 * sample? Filters off (empty target sets) mean everything. */
static __always_inline int tierctl_wanted(u32 tgid, u64 cgroup)
{
	u32 by_pid, by_cgroup, shift;

	if (!tierctl_cfg(TIERCTL_CFG_ENABLED))
		return 0;
	by_pid = tierctl_cfg(TIERCTL_CFG_FILTER_PIDS);
	by_cgroup = tierctl_cfg(TIERCTL_CFG_FILTER_CGROUPS);
	if ((by_pid || by_cgroup) && !(by_pid && filter_pids.lookup(&tgid)) &&
	    !(by_cgroup && filter_cgroups.lookup(&cgroup)))
		return 0;
	shift = tierctl_cfg(TIERCTL_CFG_SAMPLE_SHIFT) & 31;
	if (shift && (bpf_get_prandom_u32() & ((1u << shift) - 1)))
		return 0;
	return 1;
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
