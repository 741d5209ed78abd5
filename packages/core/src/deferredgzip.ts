/**
 * Deferred compression for a long-running server (the FUSE daemon): the
 * close of a small file stores its chunks raw at once (`ObjectStore.put`
 * while `deferCompression` is on) and this module compresses them shortly
 * after in a `CommitPool` worker, swapping each gzip body into its row in
 * short write transactions on the event loop. A small file's close then
 * costs no deflate on the loop (node:zlib sets up a stream per call: about
 * 30–40 µs for a 1 KiB file, a fifth of its commit), while what is stored
 * ends up compressed as before.
 *
 * The queue keeps a copy of each chunk's bytes (the ones `put` hashed), so
 * the worker compresses those and nothing is read back from the database.
 * A queued object that is gone by its turn (gc, a rolled back transaction)
 * or no longer raw is left alone. The queue lives in memory: a daemon
 * killed before its turn leaves those objects raw, which is valid (only
 * larger); stopping compresses what is left on the spot.
 */
import { CommitPool } from "./commitpipe.js";
import { CODEC_GZIP, encodeChunk, type DeferredChunk } from "./cas.js";
import type { Store } from "./store.js";

/** Most objects per worker round trip. */
const BATCH_OBJECTS = 256;
/** Most raw bytes per worker round trip: 1 MiB (about 10 ms of gzip level 1 in the worker). */
const BATCH_BYTES = 1 << 20;
/** Delay (ms) before the first batch after the queue stops being empty, so a burst of closes is batched. */
const START_DELAY_MS = 5;

/** Counters of a `DeferredCompressor` (whole run). */
export interface DeferredCompressionStats {
  /** Objects whose raw body was replaced by a smaller gzip body. */
  compressed: number;
  /** Objects that stayed raw: gzip saved too little, or their rows were gone or no longer raw. */
  keptRaw: number;
  /** Bytes saved (raw size − gzip size, summed). */
  bytesSaved: number;
  /** Batches that failed (worker or database error); their objects stayed raw. */
  failures: number;
}

/**
 * Compresses the chunks `ObjectStore.put` stored raw while deferring, in a
 * worker, one batch at a time. One per store (`Store.deferCompression`).
 */
export class DeferredCompressor {
  readonly stats: DeferredCompressionStats = { compressed: 0, keptRaw: 0, bytesSaved: 0, failures: 0 };
  private running = false;
  private stopped = false;
  /** The batch in the worker (compressed on the spot by `stop` if it comes first). */
  private inFlight: DeferredChunk[] = [];

  /** `pool`: where batches are compressed (default: the shared commit pool). */
  constructor(private readonly store: Store, private readonly pool: Pick<CommitPool, "encode"> = CommitPool.shared()) {
    store.cas.deferCompression(true, () => this.kick());
  }

  /** Resolves when the queue is empty and no batch is in flight (tests, and callers that want the final sizes). */
  async idle(): Promise<void> {
    while (this.running) await new Promise((r) => setTimeout(r, 1));
  }

  /**
   * Stops deferring: later `put`s compress at once again, and what is still
   * queued or in the worker is compressed here, synchronously, in one write
   * transaction per batch. Errors: those of `Manifest.write` (EIO…); the
   * objects not reached stay raw.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const left = [...this.inFlight, ...this.store.cas.deferCompression(false)];
    this.inFlight = [];
    const level = this.store.cas.level;
    for (let i = 0; i < left.length; i += BATCH_OBJECTS) {
      const batch = left.slice(i, i + BATCH_OBJECTS);
      this.store.manifest.write(() => {
        for (const c of batch) {
          const enc = encodeChunk(c.data, level);
          this.swap(c.hash, c.data.length, enc.codec, enc.body);
        }
      });
    }
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    setTimeout(() => void this.drain(), START_DELAY_MS).unref();
  }

  /** Takes batches off the queue until it is empty (or the compressor is stopped). */
  private async drain(): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) return;
        const batch = this.store.cas.takeDeferred(BATCH_OBJECTS, BATCH_BYTES);
        if (batch.length === 0) return;
        this.inFlight = batch;
        let encoded: { codec: number; body: Uint8Array }[];
        try {
          encoded = await this.pool.encode(batch.map((c) => c.data), this.store.cas.level);
        } catch {
          this.stats.failures++;
          this.inFlight = [];
          continue;
        }
        if (this.stopped) return; // stop() compressed this batch itself
        this.inFlight = [];
        try {
          this.store.manifest.heldWrite(() => {
            batch.forEach((c, i) => this.swap(c.hash, c.data.length, encoded[i]!.codec, encoded[i]!.body));
          });
        } catch {
          this.stats.failures++;
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Puts the gzip `body` of a chunk of `size` bytes in place of its raw body, when it is gzip (it saved enough). */
  private swap(hash: Buffer, size: number, codec: number, body: Uint8Array): void {
    if (codec === CODEC_GZIP && this.store.cas.replaceBody(hash, body)) {
      this.stats.compressed++;
      this.stats.bytesSaved += size - body.length;
    } else this.stats.keptRaw++;
  }
}
