/**
 * Crash safety: a child process writing, appending, renaming and unlinking
 * files is killed with SIGKILL at random points, several times, on the same
 * store. Afterwards fsck is clean and every file whose close was reported
 * has exactly the reported content; files caught mid-operation are in their
 * before- or after-state, never anything else.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { AgentFS } from "../src/index.js";
import { CORE_DIR, ensureDist, tempDir } from "./helpers.js";

const FIXTURE = join(CORE_DIR, "test", "fixtures", "crash-writer.mjs");
const EMPTY_SHA = createHash("sha256").update(Buffer.alloc(0)).digest("hex");

beforeAll(() => {
  ensureDist();
}, 120_000);

/** Runs the writer until it has printed READY and then for `ms` more, then SIGKILLs it; returns its complete stdout lines. */
function runAndKill(storeDir: string, run: number, seed: number, ms: number): Promise<{ lines: string[]; stderr: string; signal: string | null; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, storeDir, String(run), String(seed)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      out += d;
      if (!timer && out.includes("READY\n")) timer = setTimeout(() => child.kill("SIGKILL"), ms);
    });
    child.stderr.on("data", (d) => (err += d));
    // a child that never gets ready is killed too (and the test fails on its stderr)
    const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      const lines = out.split("\n");
      lines.pop(); // a partial last line was never completely written
      resolve({ lines, stderr: err, signal, code });
    });
  });
}

describe("crash safety", () => {
  it("SIGKILL at random points never loses a closed file or corrupts the store", async () => {
    const t = tempDir("agentfs-crash-");
    const storeDir = join(t.dir, "store");
    try {
      // Acceptable states of each path: a sha256 or null (absent).
      const expected = new Map<string, Set<string | null>>();
      const pendingRename = new Map<string, Set<string | null>>();
      const get = (p: string) => expected.get(p) ?? new Set<string | null>([null]);
      let closedSeen = 0;
      let seed = (Date.now() % 100_000) + 1;
      const RUNS = 7;
      for (let run = 0; run < RUNS; run++) {
        const delay = 150 + Math.floor(Math.random() * 900);
        const res = await runAndKill(storeDir, run, seed++, delay);
        expect(res.stderr, `child ${run} wrote to stderr`).toBe("");
        expect(res.signal, `child ${run} exited by itself (code ${res.code})`).toBe("SIGKILL");
        expect(res.lines[0]).toBe("READY");
        for (const line of res.lines.slice(1)) {
          const [kind, a, b, mode] = line.split(" ");
          switch (kind) {
            case "WRITING": {
              const s = new Set(get(a));
              s.add(b);
              if (mode === "h") s.add(EMPTY_SHA);
              expected.set(a, s);
              break;
            }
            case "SYNCING":
            case "APPENDING":
              expected.set(a, new Set([...get(a), b]));
              break;
            case "CLOSED":
              expected.set(a, new Set([b]));
              closedSeen++;
              break;
            case "RENAMING": {
              const before = get(a);
              pendingRename.set(`${a} ${b}`, before);
              expected.set(a, new Set([...before, null]));
              expected.set(b, new Set([...before, null]));
              break;
            }
            case "RENAMED": {
              const before = pendingRename.get(`${a} ${b}`)!;
              expected.set(a, new Set([null]));
              expected.set(b, before);
              break;
            }
            case "UNLINKING":
              expected.set(a, new Set([...get(a), null]));
              break;
            case "UNLINKED":
              expected.set(a, new Set([null]));
              break;
            case "SNAPSHOT":
              break;
            default:
              throw new Error(`unexpected line from child: ${line}`);
          }
        }
      }
      expect(closedSeen).toBeGreaterThan(RUNS);

      const afs = await AgentFS.open(storeDir);
      try {
        const rep = await afs.fsck();
        expect(rep.problems).toEqual([]);
        expect(rep.ok).toBe(true);
        // every file in the store is one the child announced, in an acceptable state
        const actual = new Map<string, string>();
        for (const top of (await afs.fs.readdir("/")) as string[]) {
          for (const name of (await afs.fs.readdir(`/${top}`)) as string[]) {
            const p = `/${top}/${name}`;
            actual.set(p, createHash("sha256").update((await afs.fs.readFile(p)) as Buffer).digest("hex"));
          }
        }
        for (const [p, sha] of actual) {
          expect(expected.has(p), `${p} exists but the child never wrote it`).toBe(true);
        }
        let definite = 0;
        for (const [p, ok] of expected) {
          const state = actual.get(p) ?? null;
          expect(ok.has(state), `${p} is ${state ?? "absent"}; acceptable: ${[...ok].map((x) => x ?? "absent").join(", ")}`).toBe(true);
          if (ok.size === 1 && state !== null) definite++;
        }
        expect(definite).toBeGreaterThan(0);
        // the store still works after the crashes
        await afs.fs.writeFile("/after-crash", "ok");
        expect(await afs.fs.readFile("/after-crash", "utf8")).toBe("ok");
        expect((await afs.fsck()).ok).toBe(true);
      } finally {
        afs.closeSync();
      }
    } finally {
      t.cleanup();
    }
  });
});
