/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tierctl.h - the one header shared by tierctl's BPF programs and its Python side.
 *
 * Included by bpf/fault_sampler.c and bpf/addr_sampler.c (bcc supplies u32/u64) and by
 * tests/test_bpf_layout.py, which compiles it with gcc and checks every size, offset and enum
 * value below against the Python mirror in tierctl/samplers/bpf_layout.py. Change both together.
 *
 * Only plain fixed-width fields: no kernel structs, no bitfields, no implicit padding.
 */
#ifndef TIERCTL_H
#define TIERCTL_H

/* Bounds, overridable with -D from Python (the loader always passes them). */
#ifndef TIERCTL_MAX_ENTRIES
#define TIERCTL_MAX_ENTRIES 65536 /* rows of the samples hash (one per page seen per drain) */
#endif
#ifndef TIERCTL_MAX_TARGETS
#define TIERCTL_MAX_TARGETS 1024 /* entries of each filter hash (pids, cgroup ids) */
#endif

#define TIERCTL_PAGE_SHIFT 12
#define TIERCTL_USER_ADDR_END (1ULL << 56) /* above every x86-64 user address (5-level paging) */

#ifndef __always_inline /* the kernel's compiler_types.h is not needed for these programs */
#define __always_inline inline __attribute__((always_inline))
#endif

/* Key of the samples hash: one row per (cgroup, process, flags, virtual page). 24 bytes. */
struct tierctl_key {
	u64 cgroup; /* bpf_get_current_cgroup_id(): cgroup v2 id = the directory's inode number */
	u32 pid;    /* thread group id (the process) */
	u32 flags;  /* enum tierctl_sample_flags */
	u64 vpn;    /* virtual address >> TIERCTL_PAGE_SHIFT */
};

/* Value of the samples hash. 8 bytes. */
struct tierctl_val {
	u64 count; /* observations of this key since the last drain */
};

/*
 * Sample flags. The low bits are the x86 page-fault error code bits (arch/x86/include/asm/
 * trap_pf.h, a stable encoding defined by the CPU) copied from the tracepoint's error_code;
 * bits 16 and up name the source.
 */
enum tierctl_sample_flags {
	TIERCTL_SAMPLE_PROT = 1 << 0,   /* X86_PF_PROT: the page was present (protection fault) */
	TIERCTL_SAMPLE_WRITE = 1 << 1,  /* X86_PF_WRITE: write access */
	TIERCTL_SAMPLE_USER = 1 << 2,   /* X86_PF_USER: from user mode */
	TIERCTL_SAMPLE_INSTR = 1 << 4,  /* X86_PF_INSTR: instruction fetch */
	TIERCTL_SAMPLE_FAULT_MASK = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 4),
	TIERCTL_SAMPLE_FAULT = 1 << 16, /* from exceptions:page_fault_user */
	TIERCTL_SAMPLE_PERF = 1 << 17,  /* from a perf event's sample data address */
	TIERCTL_SAMPLE_DAMON = 1 << 18, /* from DAMON regions (user space; reserved here) */
	TIERCTL_SAMPLE_IDLE = 1 << 19,  /* from idle page tracking (user space) */
	TIERCTL_SAMPLE_SOFT_DIRTY = 1 << 20, /* from soft-dirty bits: writes only (user space) */
};

/* Indices of the per-CPU counters array (summed over CPUs by Python). */
enum tierctl_counter {
	TIERCTL_CNT_EVENTS = 0,        /* events that passed the target filter */
	TIERCTL_CNT_DROP_MAP_FULL = 1, /* drops: the samples hash was full (insert failed) */
	TIERCTL_CNT_DROP_NO_ADDR = 2,  /* drops: a perf sample without a user data address */
	TIERCTL_CNT_NR = 3,
};

/* Indices of the config array (written by Python, read by the programs). */
enum tierctl_config {
	TIERCTL_CFG_ENABLED = 0,        /* 0 until Python has written the filters: count nothing */
	TIERCTL_CFG_FILTER_PIDS = 1,    /* 1: count only tgids in the filter_pids hash */
	TIERCTL_CFG_FILTER_CGROUPS = 2, /* 1: count only cgroup ids in filter_cgroups */
	TIERCTL_CFG_SAMPLE_SHIFT = 3,   /* k: keep one wanted event in 2^k, at random (0 = all) */
	TIERCTL_CFG_NR = 4,
};
/* With both filters on, an event counts when its pid OR its cgroup is a target. */

/*
 * migrate:mm_migrate_pages reasons, as the kernel numbers them (enum migrate_reason in
 * include/linux/migrate_mode.h; the tracepoint's print fmt lists the same table). Reasons at or
 * above TIERCTL_MR_SLOTS - 1 are counted in the last slot.
 */
enum tierctl_migrate_reason {
	TIERCTL_MR_COMPACTION = 0,
	TIERCTL_MR_MEMORY_FAILURE = 1,
	TIERCTL_MR_MEMORY_HOTPLUG = 2,
	TIERCTL_MR_SYSCALL = 3, /* move_pages / migrate_pages / cpusets */
	TIERCTL_MR_MEMPOLICY_MBIND = 4,
	TIERCTL_MR_NUMA_MISPLACED = 5, /* NUMA balancing (promotion in mode 2) */
	TIERCTL_MR_CONTIG_RANGE = 6,
	TIERCTL_MR_LONGTERM_PIN = 7,
	TIERCTL_MR_DEMOTION = 8,
	TIERCTL_MR_DAMON = 9,
	TIERCTL_MR_SLOTS = 16,
};

/* Value of the migrations array, one slot per reason. 24 bytes. */
struct tierctl_migrate_val {
	u64 calls;     /* migrate_pages() calls that reported this reason */
	u64 succeeded; /* base pages migrated */
	u64 failed;    /* base pages that failed to migrate */
};

#endif /* TIERCTL_H */
