/**
 * @agentfs/backstore-linux — Linux backstores for agentfs working buffers:
 * `MemfdBackstore` (memfd_create, no temp files), `HostDirBackstore`
 * (unlinked files in a host directory, FICLONE reflink copy-up with a copy
 * fallback) and `TmpfsBackstore` (a private tmpfs RAM disk).
 */
export * from "./fdbuffer.js";
export * from "./memfd.js";
export * from "./hostdir.js";
export * from "./tmpfs.js";
export * from "./memfdobjects.js";
