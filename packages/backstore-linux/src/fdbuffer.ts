/**
 * The fd-backed working buffer lives in core (`FdBuffer`, portable over
 * node:fs); this module re-exports it for the Linux backstores that create
 * its fds (memfd, O_TMPFILE on tmpfs or a host directory).
 */
export { FdBuffer, TRACK_PAGE } from "@agentfs/core";
