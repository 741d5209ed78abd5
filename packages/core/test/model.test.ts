/**
 * Property tests: random operation sequences on a small namespace applied to
 * agentfs and to a real tmpfs directory under /dev/shm must give the same
 * results / error codes and the same final tree. The second property
 * interleaves snapshots, branch switches and restores, modelled by `cp -a`
 * copies of the tmpfs tree, and checks every snapshot never changes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { AgentFS } from "../src/index.js";
import { tempDir } from "./helpers.js";
import { apply, fsOp, snapshotTree, type Op, type Side } from "./model.js";

const SHM = existsSync("/dev/shm") ? "/dev/shm" : undefined;
let oldUmask = 0;
beforeAll(() => {
  oldUmask = process.umask(0o022);
});
afterAll(() => {
  process.umask(oldUmask);
});

function describeOp(o: Op): string {
  return JSON.stringify(o);
}

describe.skipIf(!SHM)("agentfs behaves like tmpfs", () => {
  it("random operation sequences give the same results, errors and final tree", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fsOp, { minLength: 1, maxLength: 40 }), async (ops) => {
        const t = tempDir("agentfs-model-", SHM);
        const root = join(t.dir, "live");
        mkdirSync(root);
        chmodSync(root, 0o755);
        const afs = await AgentFS.open(join(t.dir, "store"), { create: true, umask: 0o022 });
        try {
          const A: Side = { kind: "agentfs", fs: afs.fs };
          const H: Side = { kind: "host", root };
          const log: string[] = [];
          for (const o of ops) {
            const ra = await apply(A, o);
            const rh = await apply(H, o);
            log.push(`${describeOp(o)} -> ${JSON.stringify(rh)}`);
            expect(ra, `op ${log.length} differs; ops so far:\n${log.join("\n")}`).toEqual(rh);
          }
          expect(await snapshotTree(A), `final tree differs after:\n${log.join("\n")}`).toEqual(await snapshotTree(H));
          // the store is consistent, and the state survives a reopen
          const rep = await afs.fsck();
          expect(rep.problems).toEqual([]);
          afs.closeSync();
          const again = await AgentFS.open(join(t.dir, "store"));
          try {
            expect(await snapshotTree({ kind: "agentfs", fs: again.fs })).toEqual(await snapshotTree(H));
          } finally {
            again.closeSync();
          }
        } finally {
          afs.closeSync();
          t.cleanup();
        }
      }),
      { numRuns: Number(process.env.AGENTFS_PROP_RUNS ?? 200) },
    );
  });

  type SnapOp = { op: "snapshot" } | { op: "branch" } | { op: "switch"; i: number } | { op: "restore"; i: number } | { op: "check" } | { op: "dropSnapshot"; i: number } | { op: "gc" };
  const snapOp: fc.Arbitrary<SnapOp> = fc.oneof(
    fc.constant({ op: "snapshot" as const }),
    fc.constant({ op: "branch" as const }),
    fc.record({ op: fc.constant("switch" as const), i: fc.nat(10) }),
    fc.record({ op: fc.constant("restore" as const), i: fc.nat(10) }),
    fc.constant({ op: "check" as const }),
    fc.record({ op: fc.constant("dropSnapshot" as const), i: fc.nat(10) }),
    fc.constant({ op: "gc" as const }),
  );
  const anyOp = fc.oneof({ weight: 5, arbitrary: fsOp as fc.Arbitrary<Op | SnapOp> }, { weight: 1, arbitrary: snapOp as fc.Arbitrary<Op | SnapOp> });

  it("snapshots never change; branches and restores follow the cp -a model", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(anyOp, { minLength: 1, maxLength: 40 }), async (ops) => {
        const t = tempDir("agentfs-snapmodel-", SHM);
        // The current branch's tree always lives at `live`, so absolute symlinks stay valid across switches.
        const live = join(t.dir, "live");
        const snaps = join(t.dir, "snaps");
        const branches = join(t.dir, "branches");
        mkdirSync(live);
        chmodSync(live, 0o755);
        mkdirSync(snaps);
        mkdirSync(branches);
        const storeDir = join(t.dir, "store");
        let afs = await AgentFS.open(storeDir, { create: true, umask: 0o022 });
        const opened: AgentFS[] = [afs];
        let branch = "main";
        const branchNames = ["main"];
        const snapNames: string[] = [];
        let snapCounter = 0;
        const H: Side = { kind: "host", root: live };
        const cpa = (from: string, to: string) => execFileSync("cp", ["-a", from, to]);
        const log: string[] = [];
        const checkSnapshots = async () => {
          for (const s of snapNames) {
            const v = await AgentFS.open(storeDir, { snapshot: s });
            try {
              const got = await snapshotTree({ kind: "agentfs", fs: v.fs });
              const want = await snapshotTree({ kind: "host", root: join(snaps, s), linkRoot: live });
              // symlink targets in the saved copy point into `live`: map them like the live tree
              expect(got, `snapshot ${s} changed; ops:\n${log.join("\n")}`).toEqual(want);
            } finally {
              v.closeSync();
            }
          }
        };
        try {
          for (const o of ops) {
            log.push(JSON.stringify(o) + ` [branch ${branch}]`);
            switch (o.op) {
              case "snapshot": {
                const name = `s${snapCounter++}`;
                await afs.snapshot(name);
                cpa(live, join(snaps, name));
                snapNames.push(name);
                break;
              }
              case "branch": {
                const name = `b${branchNames.length}`;
                await afs.branch(name);
                branchNames.push(name);
                cpa(live, join(branches, name));
                // switch to it
                renameSync(live, join(branches, branch));
                renameSync(join(branches, name), live);
                branch = name;
                afs = await AgentFS.open(storeDir, { branch, umask: 0o022 });
                opened.push(afs);
                break;
              }
              case "switch": {
                const name = branchNames[o.i % branchNames.length];
                if (name === branch) break;
                renameSync(live, join(branches, branch));
                renameSync(join(branches, name), live);
                branch = name;
                afs = await AgentFS.open(storeDir, { branch, umask: 0o022 });
                opened.push(afs);
                break;
              }
              case "restore": {
                if (!snapNames.length) break;
                const name = snapNames[o.i % snapNames.length];
                await afs.restore(name);
                rmSync(live, { recursive: true, force: true });
                cpa(join(snaps, name), live);
                break;
              }
              case "check":
                await checkSnapshots();
                break;
              case "dropSnapshot": {
                if (!snapNames.length) break;
                const name = snapNames.splice(o.i % snapNames.length, 1)[0];
                afs.store.deleteSnapshot(name);
                rmSync(join(snaps, name), { recursive: true, force: true });
                break;
              }
              case "gc":
                await afs.gc();
                expect((await afs.fsck()).problems, `fsck after gc; ops:\n${log.join("\n")}`).toEqual([]);
                break;
              default: {
                const A: Side = { kind: "agentfs", fs: afs.fs };
                const ra = await apply(A, o);
                const rh = await apply(H, o);
                log[log.length - 1] += ` -> ${JSON.stringify(rh)}`;
                expect(ra, `op differs; ops so far:\n${log.join("\n")}`).toEqual(rh);
              }
            }
          }
          expect(await snapshotTree({ kind: "agentfs", fs: afs.fs }), `final tree differs:\n${log.join("\n")}`).toEqual(await snapshotTree(H));
          await checkSnapshots();
          const rep = await afs.fsck();
          expect(rep.problems).toEqual([]);
          // gc keeps every snapshot and branch intact
          await afs.gc();
          await checkSnapshots();
          expect(await snapshotTree({ kind: "agentfs", fs: afs.fs })).toEqual(await snapshotTree(H));
          expect((await afs.fsck()).problems).toEqual([]);
        } finally {
          for (const a of opened) a.closeSync();
          t.cleanup();
        }
      }),
      { numRuns: Number(process.env.AGENTFS_PROP_RUNS ?? 150) },
    );
  });
});
