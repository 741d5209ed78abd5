/**
 * st_mode bits (as <sys/stat.h>): the file type mask and types, and the
 * set-user-ID, set-group-ID and sticky bits. The public constants are
 * re-exported by fscore.ts (and from there by `@agentfs/core`).
 */

/** st_mode bits of the file type (mask). */
export const S_IFMT = 0o170000;
/** st_mode file type: regular file. */
export const S_IFREG = 0o100000;
/** st_mode file type: directory. */
export const S_IFDIR = 0o040000;
/** st_mode file type: symbolic link. */
export const S_IFLNK = 0o120000;
/** st_mode bit: set-user-ID on execution (cleared by chown of a regular file). */
export const S_ISUID = 0o4000;
/** st_mode bit: set-group-ID (on a directory: new entries inherit its group, new subdirectories the bit). */
export const S_ISGID = 0o2000;
/** st_mode bit: sticky (on a directory: only the owner of an entry or of the directory may remove or rename it). */
export const S_ISVTX = 0o1000;
