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
/** st_mode file type: FIFO (named pipe). */
export const S_IFIFO = 0o010000;
/** st_mode file type: character device. */
export const S_IFCHR = 0o020000;
/** st_mode file type: block device. */
export const S_IFBLK = 0o060000;
/** st_mode file type: socket. */
export const S_IFSOCK = 0o140000;

/** Whether st_mode `mode` is a special file (FIFO, socket, character or block device): a node with no data whose I/O the kernel handles. */
export function isSpecial(mode: number): boolean {
  const t = mode & S_IFMT;
  return t === S_IFIFO || t === S_IFCHR || t === S_IFBLK || t === S_IFSOCK;
}
/** st_mode bit: set-user-ID on execution (cleared by chown of a regular file). */
export const S_ISUID = 0o4000;
/** st_mode bit: set-group-ID (on a directory: new entries inherit its group, new subdirectories the bit). */
export const S_ISGID = 0o2000;
/** st_mode bit: sticky (on a directory: only the owner of an entry or of the directory may remove or rename it). */
export const S_ISVTX = 0o1000;
