/**
 * The fd-backed working buffer lives in core (`FdBuffer`, portable over
 * node:fs); this module re-exports it and adds what Linux can do that
 * node:fs cannot, for the Linux backstores that create its fds (memfd,
 * O_TMPFILE on tmpfs or a host directory).
 */
import { FdBuffer } from "@agentfs/core";
import * as native from "@agentfs/native";

export { FdBuffer, TRACK_PAGE } from "@agentfs/core";

/**
 * An `FdBuffer` whose punched holes give their space back: `punchHole`
 * frees the range with fallocate(2) FALLOC_FL_PUNCH_HOLE | KEEP_SIZE (memfd
 * and tmpfs since Linux 3.5, ext4, XFS, btrfs) instead of writing zeros
 * over it. A filesystem without the mode (EOPNOTSUPP), or a sandbox without
 * fallocate (ENOSYS), gets the zeros from then on. Errors: EIO, and
 * fallocate's (EPERM under a seal, EBADF).
 */
export class PunchingFdBuffer extends FdBuffer {
  private canPunch = true;

  protected override zeroRange(lo: number, hi: number): void {
    if (this.canPunch) {
      try {
        punchHoleFd(this.fd, lo, hi - lo);
        return;
      } catch (e) {
        const code = (e as { code?: string }).code;
        // EOPNOTSUPP/ENOTSUP (one errno, 95, named either way): the filesystem lacks the mode; ENOSYS: a
        // sandbox (seccomp) refuses fallocate.
        if (code !== "EOPNOTSUPP" && code !== "ENOTSUP" && code !== "ENOSYS") throw e;
        this.canPunch = false;
      }
    }
    super.zeroRange(lo, hi);
  }
}

/**
 * Frees bytes `[offset, offset + length)` of the file open (for writing) as
 * `fd`, keeping its size: fallocate(2) FALLOC_FL_PUNCH_HOLE |
 * FALLOC_FL_KEEP_SIZE. The `PunchHole` a store needs to keep large bodies in
 * pack files (`StoreOptions.punchHole`). Errors: fallocate's, with `code`
 * (EOPNOTSUPP where the filesystem lacks the mode, EBADF, ENOSYS).
 */
export function punchHoleFd(fd: number, offset: number, length: number): void {
  native.fallocate(fd, native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE, offset, length);
}
