/**
 * `FileBuffer`: core's `FdBuffer` over an open, unlinked regular file on the
 * host (an APFS volume or any other), plus how its initial contents were
 * made.
 */
import { FdBuffer } from "@agentfs/core";

/** How a buffer's initial contents were made: `"clone"` (clonefile, blocks shared) or `"copy"`. */
export type CopyMethod = "clone" | "copy";

/**
 * A working buffer over fd `fd` (owned; closed by `dispose`) of size `size`
 * bytes; pages below `size` count as written.
 */
export class FileBuffer extends FdBuffer {
  /** Set for buffers made by `cloneFrom`. */
  method?: CopyMethod;
}
