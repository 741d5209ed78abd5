/**
 * chmod mode parsing: octal (`755`, `0644`, `4755`) and symbolic
 * (`u+x`, `go-w`, `a=rX`, `u+s,o-rwx`) modes as chmod(1) accepts them.
 */
import { UsageError } from "./context.js";

/**
 * Computes the new permission bits (0..0o7777) for `spec` applied to a file
 * whose current full mode is `current` (`isDir` enables `X` on directories).
 * An empty "who" means `a` (umask is not applied). Throws UsageError for a
 * malformed spec.
 */
export function applyMode(spec: string, current: number, isDir: boolean): number {
  if (/^[0-7]{1,4}$/.test(spec)) return parseInt(spec, 8);
  let mode = current & 0o7777;
  for (const clause of spec.split(",")) {
    const m = /^([ugoa]*)((?:[-+=][rwxXst]*)+)$/.exec(clause);
    if (!m) throw new UsageError(`invalid mode '${spec}' (expected octal like 0644 or symbolic like u+x,go-w)`);
    const who = m[1] === "" || m[1]!.includes("a") ? "ugo" : m[1]!;
    for (const op of m[2]!.match(/[-+=][rwxXst]*/g)!) {
      const sign = op[0]!;
      const perms = op.slice(1);
      const anyX = isDir || (mode & 0o111) !== 0;
      let bits = 0;
      let clear = 0;
      for (const w of who) {
        const shift = w === "u" ? 6 : w === "g" ? 3 : 0;
        clear |= 7 << shift;
        if (w === "u") clear |= 0o4000;
        if (w === "g") clear |= 0o2000;
        if (w === "o") clear |= 0o1000;
        for (const p of perms) {
          if (p === "r") bits |= 4 << shift;
          else if (p === "w") bits |= 2 << shift;
          else if (p === "x" || (p === "X" && anyX)) bits |= 1 << shift;
          else if (p === "s" && w === "u") bits |= 0o4000;
          else if (p === "s" && w === "g") bits |= 0o2000;
          else if (p === "t" && w === "o") bits |= 0o1000;
        }
      }
      if (sign === "+") mode |= bits;
      else if (sign === "-") mode &= ~bits;
      else mode = (mode & ~clear) | bits;
    }
  }
  return mode & 0o7777;
}
