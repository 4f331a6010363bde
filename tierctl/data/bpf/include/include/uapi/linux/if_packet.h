/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tierctl stub for <uapi/linux/if_packet.h>: bcc's helpers.h includes it for socket-filter
 * programs and uses none of it; tierctl loads only tracepoint and perf-event programs.
 */
#ifndef __LINUX_IF_PACKET_H
#define __LINUX_IF_PACKET_H
#endif
