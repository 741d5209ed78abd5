/**
 * hostTimeSec: the seconds handed to Node's fs.utimes must give the host
 * file exactly the whole microseconds of a ns time. `Number(ns) / 1e9` did
 * not always (a double near 2^31 s is good to ~240 ns and libuv truncates to
 * whole µs), which made export round trips lose a microsecond now and then.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import * as fs from "node:fs";
import { join } from "node:path";
import { hostTimeSec } from "../src/index.js";
import { tempDir } from "./helpers.js";

describe("hostTimeSec", () => {
  it("utimes with it sets exactly the whole µs of the ns time (tmpfs, random times 1970–2100)", () => {
    const t = tempDir("agentfs-hosttime-", "/dev/shm");
    const f = join(t.dir, "f");
    fs.writeFileSync(f, "");
    try {
      let oldWayLost = 0;
      fc.assert(
        fc.property(fc.bigInt({ min: 0n, max: 4_102_444_800_000_000_000n }), fc.bigInt({ min: 0n, max: 4_102_444_800_000_000_000n }), (at, mt) => {
          fs.utimesSync(f, hostTimeSec(at), hostTimeSec(mt));
          const st = fs.statSync(f, { bigint: true });
          expect(st.atimeNs).toBe((at / 1000n) * 1000n);
          expect(st.mtimeNs).toBe((mt / 1000n) * 1000n);
          fs.utimesSync(f, Number(at) / 1e9, Number(mt) / 1e9);
          if (fs.statSync(f, { bigint: true }).mtimeNs !== (mt / 1000n) * 1000n) oldWayLost++;
        }),
        { numRuns: 2000 },
      );
      // the conversion it replaces misses the microsecond for a good share of such times
      expect(oldWayLost).toBeGreaterThan(0);
    } finally {
      t.cleanup();
    }
  });
});
