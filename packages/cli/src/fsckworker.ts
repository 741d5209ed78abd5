/**
 * fsck of an on-disk store in a worker thread, for the mount daemon: the
 * check hashes every object and walks every tree, seconds of work on a
 * large store that must not hold the event loop serving the mount (the
 * 10 ms rule of DESIGN.md). The worker opens the store on its own
 * connection and checks one read snapshot (fsck only reads), so commits the
 * daemon makes meanwhile neither disturb nor wait for it.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { FsError, Store, fsck, type ErrnoName, type FsckReport } from "@agentfs/core";

/** What the worker posts back. */
type FsckReply = { ok: true; report: FsckReport } | { ok: false; code: string; message: string };

/**
 * Runs `fsck` on the store in directory `storeDir` in a worker thread and
 * resolves with its report (the same shape as a direct `fsck`). Rejects with
 * an FsError carrying the errno the worker met opening or reading the store
 * (ENOENT, EIO, EBUSY), EIO if the worker dies.
 */
export function fsckInWorker(storeDir: string): Promise<FsckReport> {
  return new Promise((resolve, reject) => {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { storeDir } });
    let settled = false;
    w.once("message", (m: FsckReply) => {
      settled = true;
      if (m.ok) resolve(m.report);
      else reject(new FsError((/^E[A-Z0-9]+$/.test(m.code) ? m.code : "EIO") as ErrnoName, "fsck", storeDir, undefined, m.message));
    });
    w.once("error", (e) => {
      if (!settled) reject(new FsError("EIO", "fsck", storeDir, undefined, `fsck worker failed: ${e.message}`));
      settled = true;
    });
    w.once("exit", (code) => {
      if (!settled) reject(new FsError("EIO", "fsck", storeDir, undefined, `fsck worker exited with code ${code}`));
    });
  });
}

if (!isMainThread && parentPort && (workerData as { storeDir?: string })?.storeDir) {
  const dir = (workerData as { storeDir: string }).storeDir;
  let reply: FsckReply;
  try {
    const store = Store.open(dir);
    try {
      reply = { ok: true, report: store.manifest.read(() => fsck(store)) };
    } finally {
      store.close();
    }
  } catch (e) {
    const err = e as { code?: string; message?: string };
    reply = { ok: false, code: typeof err.code === "string" ? err.code : "EIO", message: err.message ?? String(e) };
  }
  parentPort.postMessage(reply);
}
