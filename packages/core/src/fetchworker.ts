/**
 * Fetch worker (a `worker_threads` entry point, started by `FetchPool`): the
 * read half of the CAS off the main thread. For a batch of object hashes it
 * selects each stored body from the manifest database on a read-only
 * connection of its own, decompresses it, checks its SHA-256 and copies the
 * verified bytes into a buffer the main thread lent it (`ReadAheadCache`
 * reuses them, so reading ahead allocates no memory per chunk and makes no
 * garbage for V8 to collect). An object that is missing, cannot be
 * decompressed, fails its check or is not the expected size is answered as
 * not fetched: the main thread then reads it itself and reports the EIO.
 */
import { parentPort } from "node:worker_threads";
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";
import type BetterSqlite3 from "better-sqlite3";
import { sha256, CODEC_GZIP } from "./cas.js";

/**
 * Messages to a fetch worker.
 * - `fetch`: verify the objects whose 32-byte hashes are packed in
 *   `hashes`, from SQLite database `file`, and copy the i-th one's bytes to
 *   the start of `bufs[i]` (transferred here and back, so that buffers are
 *   reused instead of allocated per chunk); an object whose size is not
 *   `lens[i]` is not fetched.
 * - `forget`: close the connection to `file` (its store was closed).
 */
export type FetchIn =
  | { t: "fetch"; id: number; file: string; hashes: Uint8Array; lens: number[]; bufs: ArrayBuffer[] }
  | { t: "forget"; file: string };

/** The answer to `fetch` `id`: `ok[i]` is 1 when the i-th object asked is verified and in `bufs[i]` (the buffers sent, given back). */
export type FetchOut = { t: "fetched"; id: number; ok: Uint8Array; bufs: ArrayBuffer[] };

const Database = createRequire(import.meta.url)("better-sqlite3") as typeof BetterSqlite3;
const conns = new Map<string, BetterSqlite3.Statement>();

function statementFor(file: string): BetterSqlite3.Statement {
  let st = conns.get(file);
  if (!st) {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("mmap_size = 1073741824"); // read through the page cache's mapping, without a pread per 4 KiB page
    st = db.prepare("SELECT size, codec, data FROM objects WHERE hash = ?");
    conns.set(file, st);
  }
  return st;
}

/** The verified bytes of object `hash`, or null (missing, undecodable, or a SHA-256 mismatch). */
function fetchOne(st: BetterSqlite3.Statement, hash: Buffer): Buffer | null {
  const row = st.get(hash) as { size: number; codec: number; data: Buffer } | undefined;
  if (!row) return null;
  let data: Buffer;
  try {
    data = row.codec === CODEC_GZIP ? gunzipSync(row.data) : row.data;
  } catch {
    return null;
  }
  return data.length === row.size && sha256(data).equals(hash) ? data : null;
}

function handle(m: FetchIn): void {
  if (m.t === "forget") {
    conns.get(m.file)?.database.close();
    conns.delete(m.file);
    return;
  }
  const n = m.lens.length;
  const ok = new Uint8Array(n);
  let st: BetterSqlite3.Statement | null = null;
  try {
    st = statementFor(m.file);
  } catch {
    /* cannot open: nothing fetched, the main thread reads them itself */
  }
  for (let i = 0; st && i < n; i++) {
    try {
      const d = fetchOne(st, Buffer.from(m.hashes.buffer, m.hashes.byteOffset + i * 32, 32));
      if (d && d.length === m.lens[i] && d.length <= m.bufs[i].byteLength) {
        new Uint8Array(m.bufs[i]).set(d);
        ok[i] = 1;
      }
    } catch {
      /* SQLITE_BUSY, a damaged page …: the main thread's own read reports it */
    }
  }
  const out: FetchOut = { t: "fetched", id: m.id, ok, bufs: m.bufs };
  parentPort!.postMessage(out, m.bufs);
}

if (parentPort) parentPort.on("message", handle);
