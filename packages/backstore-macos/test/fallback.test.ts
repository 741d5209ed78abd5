/**
 * The non-APFS path of ApfsCloneBackstore, with real files: where clonefile
 * is refused (ENOSYS off macOS, ENOTSUP/EXDEV on other volumes) copy-up
 * copies. Runs everywhere; it does not test APFS.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ApfsCloneBackstore, cloneFile, isApfs } from "../src/index.js";

describe("ApfsCloneBackstore off APFS (copy fallback, real files)", () => {
  it.skipIf(isApfs(os.tmpdir()))("kind hostdir; cloneFrom copies; buffers are unlinked files", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentfs-macos-fallback-"));
    try {
      const bs = new ApfsCloneBackstore(dir);
      expect(bs.kind).toBe("hostdir");
      const src = path.join(dir, "src");
      fs.writeFileSync(src, "host bytes");
      const b = bs.cloneFrom(src);
      expect(b.method).toBe("copy");
      const out = Buffer.alloc(10);
      b.read(out, 0, 10, 0);
      expect(out.toString()).toBe("host bytes");
      b.write(Buffer.from("HOST"), 0, 4, 0);
      expect(fs.readFileSync(src, "utf8")).toBe("host bytes");
      b.truncate(2);
      expect(b.size).toBe(2);
      b.dispose();
      expect(fs.readdirSync(dir)).toEqual(["src"]);
      expect(cloneFile(src, path.join(dir, "dst"))).toBe("copy");
      expect(() => cloneFile(src, path.join(dir, "dst"))).toThrow(/EEXIST/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
