/**
 * @agentfs/backstore-macos — macOS backstores: `ApfsCloneBackstore`
 * (buffers in a directory; copy-up by clonefile(2) on APFS), `isApfs`
 * (statfs f_fstypename), and `ApfsRamDisk` (an ephemeral APFS RAM disk made
 * with hdiutil + diskutil, detached on close and at exit). Builds everywhere;
 * works only on macOS.
 */
export * from "./filebuffer.js";
export * from "./apfs.js";
export * from "./ramdisk.js";
