/**
 * The three contenders behind one small interface, so every workload runs
 * the same calls against each:
 *
 * - `tmpfs`   — `node:fs/promises` on a directory under /dev/shm (the floor);
 * - `agentfs` — this repository's SDK (`AgentFS.open(dir).fs`, store on /dev/shm);
 * - `sdk`     — Turso's `agentfs-sdk` from npm (SQLite/Turso database on /dev/shm).
 */
import * as nfs from "node:fs/promises";
import { join } from "node:path";
import { AgentFS } from "@agentfs/core";
import { AgentFS as TursoAgentFS } from "agentfs-sdk";
import { fileSize, scanTree, scratchDir, removeDir } from "./util.js";

/** Identifier of a contender; also the key of result values. */
export type ContenderId = "tmpfs" | "agentfs" | "sdk";

/** Display names used in tables. */
export const CONTENDER_NAMES: Record<ContenderId, string> = {
  tmpfs: "node:fs on tmpfs",
  agentfs: "agentfs",
  sdk: "agentfs-sdk (Turso)",
};

/** All contenders in table order. */
export const CONTENDERS: ContenderId[] = ["tmpfs", "agentfs", "sdk"];

/** The file operations the workloads need. Paths are absolute within the contender's tree ("/d0/f1"). */
export interface BenchFs {
  readonly id: ContenderId;
  /** Host directory holding this contender's data (deleted by `dispose`). */
  readonly dir: string;
  mkdir(path: string): Promise<void>;
  writeFile(path: string, data: Buffer): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  /** Size in bytes of the file at `path` (follows symlinks). */
  stat(path: string): Promise<number>;
  readdir(path: string): Promise<string[]>;
  symlink(target: string, path: string): Promise<void>;
  /** Creates `path` and writes `chunks` one after another through one open handle (one write call per chunk). */
  writeSequential(path: string, chunks: Buffer[]): Promise<void>;
  /** Reads `path` front to back in `chunkBytes` reads through one open handle; returns bytes read. */
  readSequential(path: string, chunkBytes: number): Promise<number>;
  /** Bytes this contender occupies on the host now (tree bytes, or database + WAL file sizes). */
  hostBytes(): number;
  /** Closes the contender (commits, checkpoints). */
  close(): Promise<void>;
  /** Closes and deletes the contender's host directory. */
  dispose(): Promise<void>;
}

/** The part of a `node:fs/promises` FileHandle (also the agentfs SDK's) that the sequential workloads use. */
interface SeqHandle {
  write(buf: Buffer, offset: number, length: number, position: number): Promise<unknown>;
  read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/** Writes `chunks` back to back through `fh` (one write call each, at explicit positions), then closes it. */
async function writeChunks(fh: SeqHandle, chunks: Buffer[]): Promise<void> {
  try {
    let pos = 0;
    for (const c of chunks) {
      await fh.write(c, 0, c.length, pos);
      pos += c.length;
    }
  } finally {
    await fh.close();
  }
}

/** Reads `fh` front to back in `chunkBytes` reads, closes it, and returns the bytes read. */
async function readAll(fh: SeqHandle, chunkBytes: number): Promise<number> {
  const buf = Buffer.allocUnsafe(chunkBytes);
  let total = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, chunkBytes, total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return total;
}

/** `node:fs/promises` rooted at a fresh tmpfs directory. */
export class TmpfsFs implements BenchFs {
  readonly id = "tmpfs" as const;
  readonly dir: string;
  constructor(label: string) {
    this.dir = scratchDir(`tmpfs-${label}`);
  }
  private p(path: string): string {
    return join(this.dir, path);
  }
  async mkdir(path: string): Promise<void> {
    await nfs.mkdir(this.p(path));
  }
  async writeFile(path: string, data: Buffer): Promise<void> {
    await nfs.writeFile(this.p(path), data);
  }
  async readFile(path: string): Promise<Buffer> {
    return nfs.readFile(this.p(path));
  }
  async stat(path: string): Promise<number> {
    return (await nfs.stat(this.p(path))).size;
  }
  async readdir(path: string): Promise<string[]> {
    return nfs.readdir(this.p(path));
  }
  async symlink(target: string, path: string): Promise<void> {
    await nfs.symlink(target, this.p(path));
  }
  async writeSequential(path: string, chunks: Buffer[]): Promise<void> {
    await writeChunks(await nfs.open(this.p(path), "w"), chunks);
  }
  async readSequential(path: string, chunkBytes: number): Promise<number> {
    return readAll(await nfs.open(this.p(path), "r"), chunkBytes);
  }
  hostBytes(): number {
    return scanTree(this.dir).bytes;
  }
  async close(): Promise<void> {}
  async dispose(): Promise<void> {
    removeDir(this.dir);
  }
}

/** This repository's SDK: `AgentFS.open(dir, { create: true }).fs`, the node:fs/promises mirror. */
export class AgentFsFs implements BenchFs {
  readonly id = "agentfs" as const;
  private closed = false;
  private constructor(readonly dir: string, readonly afs: AgentFS) {}

  /** Opens a fresh store in a new tmpfs directory. */
  static async create(label: string): Promise<AgentFsFs> {
    const dir = scratchDir(`agentfs-${label}`);
    return new AgentFsFs(dir, await AgentFS.open(dir, { create: true }));
  }
  async mkdir(path: string): Promise<void> {
    await this.afs.fs.mkdir(path);
  }
  async writeFile(path: string, data: Buffer): Promise<void> {
    await this.afs.fs.writeFile(path, data);
  }
  async readFile(path: string): Promise<Buffer> {
    return (await this.afs.fs.readFile(path)) as Buffer;
  }
  async stat(path: string): Promise<number> {
    return Number((await this.afs.fs.stat(path)).size);
  }
  async readdir(path: string): Promise<string[]> {
    return (await this.afs.fs.readdir(path)) as string[];
  }
  async symlink(target: string, path: string): Promise<void> {
    await this.afs.fs.symlink(target, path);
  }
  async writeSequential(path: string, chunks: Buffer[]): Promise<void> {
    await writeChunks(await this.afs.fs.open(path, "w"), chunks);
  }
  async readSequential(path: string, chunkBytes: number): Promise<number> {
    return readAll(await this.afs.fs.open(path, "r"), chunkBytes);
  }
  hostBytes(): number {
    let n = 0;
    for (const f of scanTree(this.dir).files) n += f.size;
    return n;
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.afs.close();
  }
  async dispose(): Promise<void> {
    await this.close();
    removeDir(this.dir);
  }
}

type TursoFs = Awaited<ReturnType<typeof TursoAgentFS.open>>["fs"];

/** Turso's `agentfs-sdk`: `AgentFS.open({ path }).fs`, a filesystem in one SQLite/Turso database. */
export class TursoSdkFs implements BenchFs {
  readonly id = "sdk" as const;
  private closed = false;
  private constructor(readonly dir: string, readonly dbPath: string, readonly agent: TursoAgentFS, readonly fs: TursoFs) {}

  /** Opens a fresh database in a new tmpfs directory. */
  static async create(label: string): Promise<TursoSdkFs> {
    const dir = scratchDir(`sdk-${label}`);
    const dbPath = join(dir, "agentfs.db");
    const agent = await TursoAgentFS.open({ path: dbPath });
    return new TursoSdkFs(dir, dbPath, agent, agent.fs);
  }
  async mkdir(path: string): Promise<void> {
    await this.fs.mkdir(path);
  }
  async writeFile(path: string, data: Buffer): Promise<void> {
    await this.fs.writeFile(path, data);
  }
  async readFile(path: string): Promise<Buffer> {
    return this.fs.readFile(path);
  }
  async stat(path: string): Promise<number> {
    return (await this.fs.stat(path)).size;
  }
  async readdir(path: string): Promise<string[]> {
    return this.fs.readdir(path);
  }
  async symlink(target: string, path: string): Promise<void> {
    await this.fs.symlink(target, path);
  }
  async writeSequential(path: string, chunks: Buffer[]): Promise<void> {
    // The SDK's open() needs an existing file; its handle offers pwrite/pread only.
    await this.fs.writeFile(path, Buffer.alloc(0));
    const fh = await this.fs.open(path);
    let pos = 0;
    for (const c of chunks) {
      await fh.pwrite(pos, c);
      pos += c.length;
    }
  }
  async readSequential(path: string, chunkBytes: number): Promise<number> {
    const fh = await this.fs.open(path);
    let total = 0;
    for (;;) {
      const b = await fh.pread(total, chunkBytes);
      if (b.length === 0) break;
      total += b.length;
    }
    return total;
  }
  hostBytes(): number {
    return fileSize(this.dbPath) + fileSize(this.dbPath + "-wal");
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.agent.close();
  }
  async dispose(): Promise<void> {
    await this.close();
    removeDir(this.dir);
  }
}

/** Opens a fresh instance of contender `id`; `label` names its scratch directory. */
export async function openContender(id: ContenderId, label: string): Promise<BenchFs> {
  switch (id) {
    case "tmpfs":
      return new TmpfsFs(label);
    case "agentfs":
      return AgentFsFs.create(label);
    case "sdk":
      return TursoSdkFs.create(label);
  }
}
