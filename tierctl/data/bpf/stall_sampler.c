/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stall_sampler.c - direct-reclaim stalls per cgroup, and OOM victims.
 *
 * Loaded by tierctl/samplers/stall.py through bcc (sampler "bpf-stall"). Stable tracepoints only:
 *   vmscan:mm_vmscan_direct_reclaim_begin/end  a task reclaims for the page allocator (global)
 *   vmscan:mm_vmscan_memcg_reclaim_begin/end   a task reclaims for its cgroup (memory.max/high)
 *   oom:mark_victim                            the OOM killer chose a task (its pid)
 *   sched:sched_process_exit                   a task exits: an OOM victim's own cgroup and comm
 * Reads only tracepoint arguments and BPF helpers, never kernel structs. Every map is bounded;
 * what does not fit is counted as a drop and never blocks the kernel.
 *
 * The begin time of a running reclaim is kept per thread (key: thread id and kind) and turned into
 * one episode of (end - begin) ns of the cgroup the thread was in at begin. The end handler runs
 * even while counting is off, so no start entry outlives its episode.
 */
#include "tierctl.h"

#ifndef TIERCTL_STALL_MAX_TASKS
#define TIERCTL_STALL_MAX_TASKS 8192 /* threads in reclaim at the same time */
#endif
#ifndef TIERCTL_STALL_MAX_CGROUPS
#define TIERCTL_STALL_MAX_CGROUPS 4096 /* cgroups with stalls between two drains */
#endif
#ifndef TIERCTL_STALL_MAX_VICTIMS
#define TIERCTL_STALL_MAX_VICTIMS 256 /* OOM victims not yet handed over */
#endif

enum stall_kind {
	STALL_DIRECT = 0, /* page allocator: mm_vmscan_direct_reclaim_* */
	STALL_MEMCG = 1,  /* cgroup limit: mm_vmscan_memcg_reclaim_* */
};

/* Indices of the per-CPU stall_counters array (mirrored by tierctl/samplers/stall.py StallCounter). */
enum stall_counter {
	STALL_CNT_EPISODES = 0,       /* episodes counted (both kinds) */
	STALL_CNT_DROP_TASKS = 1,     /* a begin not recorded: the start map was full */
	STALL_CNT_DROP_CGROUPS = 2,   /* an episode lost: the cgroup map was full */
	STALL_CNT_DROP_VICTIMS = 3,   /* an OOM victim lost: the victim map was full */
	STALL_CNT_UNMATCHED_END = 4,  /* an end without its begin (reclaim running when attached) */
	STALL_CNT_VICTIMS = 5,        /* OOM victims seen */
	STALL_CNT_NR = 6,
};

struct stall_task_key {
	u32 tid;  /* thread id (the kernel's pid) */
	u32 kind; /* enum stall_kind */
};

struct stall_start {
	u64 ts;     /* bpf_ktime_get_ns() at begin */
	u64 cgroup; /* cgroup v2 id of the thread at begin */
};

/* Per cgroup, since the last drain. */
struct stall_val {
	u64 direct_episodes;
	u64 direct_ns;
	u64 memcg_episodes;
	u64 memcg_ns;
	u64 max_ns; /* the longest single episode */
};

/* One OOM victim; the user side hands it over once the victim exited (or after a grace time). */
struct stall_victim {
	u64 ts;             /* bpf_ktime_get_ns() at mark_victim */
	u64 invoker_cgroup; /* cgroup of the task that ran the OOM killer (current at mark_victim) */
	u64 victim_cgroup;  /* cgroup of the victim itself, from its exit; 0 until then */
	u32 tgid;           /* the victim's process, from its exit; 0 until then */
	u32 exited;         /* 1 once sched_process_exit ran for the victim thread */
	char comm[16];      /* the victim's comm, from its exit */
};

BPF_ARRAY(config, u32, TIERCTL_CFG_NR);
BPF_HASH(filter_pids, u32, u8, TIERCTL_MAX_TARGETS);
BPF_HASH(filter_cgroups, u64, u8, TIERCTL_MAX_TARGETS);
BPF_PERCPU_ARRAY(stall_counters, u64, STALL_CNT_NR);
BPF_HASH(stall_starts, struct stall_task_key, struct stall_start, TIERCTL_STALL_MAX_TASKS);
BPF_HASH(stall_cgroups, u64, struct stall_val, TIERCTL_STALL_MAX_CGROUPS);
BPF_HASH(oom_victims, u32, struct stall_victim, TIERCTL_STALL_MAX_VICTIMS);

static __always_inline void stall_bump(int idx)
{
	u64 *c = stall_counters.lookup(&idx);
	if (c)
		*c += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline u32 stall_cfg(int idx)
{
	u32 *v = config.lookup(&idx);
	return v ? *v : 0;
}

/* Counting on, and the thread one of the targets (no targets: everything). */
static __always_inline int stall_wanted(u32 tgid, u64 cgroup)
{
	u32 by_pid, by_cgroup;

	if (!stall_cfg(TIERCTL_CFG_ENABLED))
		return 0;
	by_pid = stall_cfg(TIERCTL_CFG_FILTER_PIDS);
	by_cgroup = stall_cfg(TIERCTL_CFG_FILTER_CGROUPS);
	if ((by_pid || by_cgroup) && !(by_pid && filter_pids.lookup(&tgid)) &&
	    !(by_cgroup && filter_cgroups.lookup(&cgroup)))
		return 0;
	return 1;
}

static __always_inline void stall_begin(u32 kind)
{
	u64 id = bpf_get_current_pid_tgid();
	struct stall_task_key key = {};
	struct stall_start start = {};

	start.cgroup = bpf_get_current_cgroup_id();
	if (!stall_wanted(id >> 32, start.cgroup))
		return;
	key.tid = (u32)id;
	key.kind = kind;
	start.ts = bpf_ktime_get_ns();
	if (stall_starts.update(&key, &start)) /* BPF_ANY: a stale entry of this thread is replaced */
		stall_bump(STALL_CNT_DROP_TASKS);
}

static __always_inline void stall_end(u32 kind)
{
	u64 now = bpf_ktime_get_ns();
	struct stall_task_key key = {};
	struct stall_start *start;
	struct stall_val zero = {};
	struct stall_val *val;
	u64 cgroup, delta;

	key.tid = (u32)bpf_get_current_pid_tgid();
	key.kind = kind;
	start = stall_starts.lookup(&key);
	if (!start) {
		if (stall_cfg(TIERCTL_CFG_ENABLED))
			stall_bump(STALL_CNT_UNMATCHED_END);
		return;
	}
	delta = now > start->ts ? now - start->ts : 0;
	cgroup = start->cgroup;
	stall_starts.delete(&key);
	if (!stall_cfg(TIERCTL_CFG_ENABLED))
		return;
	val = stall_cgroups.lookup_or_try_init(&cgroup, &zero);
	if (!val) {
		stall_bump(STALL_CNT_DROP_CGROUPS);
		return;
	}
	if (kind == STALL_DIRECT) {
		__sync_fetch_and_add(&val->direct_episodes, 1);
		__sync_fetch_and_add(&val->direct_ns, delta);
	} else {
		__sync_fetch_and_add(&val->memcg_episodes, 1);
		__sync_fetch_and_add(&val->memcg_ns, delta);
	}
	if (delta > val->max_ns)
		val->max_ns = delta; /* racy between CPUs: a maximum, not a sum */
	stall_bump(STALL_CNT_EPISODES);
}

TRACEPOINT_PROBE(vmscan, mm_vmscan_direct_reclaim_begin)
{
	stall_begin(STALL_DIRECT);
	return 0;
}

TRACEPOINT_PROBE(vmscan, mm_vmscan_direct_reclaim_end)
{
	stall_end(STALL_DIRECT);
	return 0;
}

TRACEPOINT_PROBE(vmscan, mm_vmscan_memcg_reclaim_begin)
{
	stall_begin(STALL_MEMCG);
	return 0;
}

TRACEPOINT_PROBE(vmscan, mm_vmscan_memcg_reclaim_end)
{
	stall_end(STALL_MEMCG);
	return 0;
}

/* Runs in the context of the task that invoked the OOM killer; args->pid is the victim thread. Victims
 * are not filtered by target: a kill anywhere matters to every cgroup. */
TRACEPOINT_PROBE(oom, mark_victim)
{
	struct stall_victim v = {};
	u32 pid = args->pid;

	if (!stall_cfg(TIERCTL_CFG_ENABLED))
		return 0;
	v.ts = bpf_ktime_get_ns();
	v.invoker_cgroup = bpf_get_current_cgroup_id();
	stall_bump(STALL_CNT_VICTIMS);
	if (oom_victims.update(&pid, &v))
		stall_bump(STALL_CNT_DROP_VICTIMS);
	return 0;
}

/* Runs in the exiting thread (before cgroup_exit): an OOM victim's own cgroup, process and comm. */
TRACEPOINT_PROBE(sched, sched_process_exit)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id;
	struct stall_victim *v = oom_victims.lookup(&tid);

	if (!v || v->exited)
		return 0;
	v->victim_cgroup = bpf_get_current_cgroup_id();
	v->tgid = id >> 32;
	bpf_get_current_comm(&v->comm, sizeof(v->comm));
	v->exited = 1;
	return 0;
}
