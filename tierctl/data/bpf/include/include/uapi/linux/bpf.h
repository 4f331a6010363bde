/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tierctl stub for <uapi/linux/bpf.h>. bcc force-includes its own copy of this UAPI header
 * (/virtual/include/bcc/bpf.h, same include guard) before helpers.h asks for this one, so the
 * kernel's copy would be skipped anyway. Were bcc to compile without its copy, fail loudly.
 */
#ifndef _UAPI__LINUX_BPF_H__
#error "tierctl's minimal header tree relies on bcc's built-in bpf.h (/virtual/include/bcc/bpf.h)"
#endif
