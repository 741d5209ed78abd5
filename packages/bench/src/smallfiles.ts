/**
 * Small-file workload: create + write N files of a few KiB spread over a few
 * directories, read them all back, then stat every file and readdir every
 * directory. Each run uses a fresh store per contender.
 */
import { type BenchFs, type ContenderId, openContender } from "./contenders.js";
import type { Row } from "./report.js";
import { collectGarbage, log, median, now, textData } from "./util.js";

/** Parameters of the small-file workload. */
export interface SmallFilesOptions {
  /** Number of files (default 10 000). */
  files: number;
  /** Bytes per file (default 4096). */
  fileBytes: number;
  /** Directories the files are spread over (default 10). */
  dirs: number;
  /** Timed runs per contender; each value is their median (default 3). */
  runs: number;
  contenders: ContenderId[];
}

interface PhaseTimes {
  write: number;
  read: number;
  stat: number;
}

/** One pass over a fresh contender; returns the three phase times in ms. */
async function onePass(fs: BenchFs, files: number, dirs: number, fileBytes: number, data: Buffer): Promise<PhaseTimes> {
  const paths: string[] = [];
  for (let i = 0; i < files; i++) paths.push(`/d${i % dirs}/f${i}.txt`);

  let t0 = now();
  for (let d = 0; d < dirs; d++) await fs.mkdir(`/d${d}`);
  for (let i = 0; i < files; i++) await fs.writeFile(paths[i], data.subarray(i * fileBytes, (i + 1) * fileBytes));
  const write = now() - t0;

  t0 = now();
  let bytes = 0;
  for (let i = 0; i < files; i++) bytes += (await fs.readFile(paths[i])).length;
  const read = now() - t0;
  if (bytes !== files * fileBytes) throw new Error(`${fs.id}: read back ${bytes} bytes, expected ${files * fileBytes}`);

  t0 = now();
  let sizes = 0;
  let names = 0;
  for (let d = 0; d < dirs; d++) names += (await fs.readdir(`/d${d}`)).length;
  for (let i = 0; i < files; i++) sizes += await fs.stat(paths[i]);
  const stat = now() - t0;
  if (names !== files || sizes !== files * fileBytes) throw new Error(`${fs.id}: stat/readdir saw ${names} names and ${sizes} bytes`);

  // Spot-check content: a wrong byte here would make every time above meaningless.
  const k = Math.floor(files / 2);
  const back = await fs.readFile(paths[k]);
  if (!back.equals(data.subarray(k * fileBytes, (k + 1) * fileBytes))) throw new Error(`${fs.id}: content of ${paths[k]} differs`);
  return { write, read, stat };
}

/**
 * Runs the small-file workload: one warm-up pass (a tenth of the files) per
 * contender, then `runs` timed passes with the contender order rotated each
 * pass. Returns three rows (ms, median): create+write, read, stat+readdir.
 */
export async function benchSmallFiles(o: SmallFilesOptions): Promise<Row[]> {
  const data = textData(o.files * o.fileBytes, 1);
  const times = new Map<ContenderId, PhaseTimes[]>();
  for (const id of o.contenders) {
    const fs = await openContender(id, "small-warmup");
    try {
      await onePass(fs, Math.max(o.dirs, Math.floor(o.files / 10)), o.dirs, o.fileBytes, data);
    } finally {
      await fs.dispose();
    }
    times.set(id, []);
  }
  for (let r = 0; r < o.runs; r++) {
    const order = o.contenders.map((_, i) => o.contenders[(i + r) % o.contenders.length]);
    for (const id of order) {
      collectGarbage();
      const fs = await openContender(id, `small-${r}`);
      try {
        const t = await onePass(fs, o.files, o.dirs, o.fileBytes, data);
        times.get(id)!.push(t);
        log(`small files run ${r + 1}/${o.runs} ${id}: write ${t.write.toFixed(0)} ms, read ${t.read.toFixed(0)} ms, stat ${t.stat.toFixed(0)} ms`);
      } finally {
        await fs.dispose();
      }
    }
  }
  const group = `Small files: ${o.files.toLocaleString("en")} × ${o.fileBytes / 1024} KiB in ${o.dirs} dirs`;
  const runs = Object.fromEntries(o.contenders.map((c) => [c, o.runs]));
  const row = (id: string, name: string, phase: keyof PhaseTimes, ops: number): Row => ({
    id,
    group,
    name,
    kind: "ms",
    values: Object.fromEntries(o.contenders.map((c) => [c, median(times.get(c)!.map((t) => t[phase]))])),
    work: { ops },
    runs,
  });
  return [
    row("small.write", "create + write (mkdir + writeFile)", "write", o.files),
    row("small.read", "read back (readFile)", "read", o.files),
    row("small.stat", "stat every file + readdir every dir", "stat", o.files + o.dirs),
  ];
}
