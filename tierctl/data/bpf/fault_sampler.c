/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fault_sampler.c - counts user page faults per (cgroup, process, page) and migrations per reason.
 *
 * Loaded by tierctl/samplers/fault.py through bcc. Reads only tracepoint arguments and BPF
 * helpers (stable ABI), never kernel structs. Every map is bounded.
 */
#include <linux/migrate_mode.h> /* enum migrate_mode, named by mm_migrate_pages' format */
#include "tierctl.h"

#include "tierctl_prog.h"

BPF_ARRAY(migrations, struct tierctl_migrate_val, TIERCTL_MR_SLOTS);

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
