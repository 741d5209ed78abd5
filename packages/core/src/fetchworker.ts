/**
 * Fetch worker (a `worker_threads` entry point, started by `FetchPool`): the
 * read half of the CAS off the main thread. For a batch of object hashes it
 * selects each stored body from the manifest database on a read-only
 * connection of its own, decompresses it and checks its SHA-256, and sends
 * back the verified bytes (transferred, not copied). An object that is
 * missing, cannot be decompressed or fails its check is answered as not
 * fetched: the main thread then reads it itself and reports the EIO.
 */
import { parentPort } from "node:worker_threads";
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";
import type BetterSqlite3 from "better-sqlite3";
import { sha256, CODEC_GZIP } from "./cas.js";

/**
 * Messages to a fetch worker. `fetch`: verify the objects whose 32-byte
 * hashes are packed in `hashes`, from SQLite database `file`. `forget`:
 * close the connection to `file` (its store was closed).
 */
export type FetchIn = { t: "fetch"; id: number; file: string; hashes: Uint8Array } | { t: "forget"; file: string };

/**
 * The answer to `fetch` `id`: `ok[i]` is 1 when the i-th hash asked was
 * fetched and verified; `data` holds those objects' bytes, in order.
 */
export type FetchOut = { t: "fetched"; id: number; ok: Uint8Array; data: Uint8Array[] };

const Database = createRequire(import.meta.url)("better-sqlite3") as typeof BetterSqlite3;
const conns = new Map<string, BetterSqlite3.Statement>();

function statementFor(file: string): BetterSqlite3.Statement {
  let st = conns.get(file);
  if (!st) {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("mmap_size = 268435456");
    st = db.prepare("SELECT size, codec, data FROM objects WHERE hash = ?");
    conns.set(file, st);
  }
  return st;
}

/** The verified bytes of object `hash`, or null (missing, undecodable, or a SHA-256 mismatch). */
function fetchOne(st: BetterSqlite3.Statement, hash: Buffer): Uint8Array | null {
  const row = st.get(hash) as { size: number; codec: number; data: Buffer } | undefined;
  if (!row) return null;
  let data: Buffer;
  try {
    data = row.codec === CODEC_GZIP ? gunzipSync(row.data) : row.data;
  } catch {
    return null;
  }
  if (data.length !== row.size || !sha256(data).equals(hash)) return null;
  // Transferable only when the bytes own their whole ArrayBuffer (small buffers share Node's pool).
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
}

function handle(m: FetchIn): void {
  if (m.t === "forget") {
    conns.get(m.file)?.database.close();
    conns.delete(m.file);
    return;
  }
  const n = m.hashes.length / 32;
  const ok = new Uint8Array(n);
  const data: Uint8Array[] = [];
  let st: BetterSqlite3.Statement | null = null;
  try {
    st = statementFor(m.file);
  } catch {
    /* cannot open: nothing fetched, the main thread reads them itself */
  }
  for (let i = 0; st && i < n; i++) {
    let d: Uint8Array | null = null;
    try {
      d = fetchOne(st, Buffer.from(m.hashes.buffer, m.hashes.byteOffset + i * 32, 32));
    } catch {
      d = null; // SQLITE_BUSY, a damaged page …: the main thread's own read reports it
    }
    if (d) {
      ok[i] = 1;
      data.push(d);
    }
  }
  const out: FetchOut = { t: "fetched", id: m.id, ok, data };
  parentPort!.postMessage(out, data.map((d) => d.buffer as ArrayBuffer));
}

if (parentPort) parentPort.on("message", handle);
