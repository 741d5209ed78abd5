/**
 * @agentfs/ermfd — the export layer: `exportMemfd` (a stored file as a real
 * memfd, snapshot semantics, optional read-only seals), `execStored` (run a
 * stored executable or `#!` script by fexecve, no file on disk) and
 * `FdServer` (hands out exported fds to other processes over a unix socket;
 * protocol in README.md).
 */
export * from "./export.js";
export * from "./protocol.js";
export * from "./server.js";
export * from "./exec.js";
