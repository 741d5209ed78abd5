/**
 * Output helpers shared by the commands: human-readable sizes, ls-style mode
 * strings, times, and JSON that can carry bigints.
 */
import { kindOf, type EntryKind } from "@agentfs/core";

/**
 * Formats a byte count with IEC units (B, KiB, MiB, GiB, TiB): `1536` →
 * `"1.5 KiB"`, `512` → `"512 B"`. One decimal above bytes; never throws
 * (negative or non-finite input is printed as is).
 */
export function humanBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** `ls -l` type letters by kind. */
const TYPE_CHARS: Record<EntryKind, string> = {
  file: "-", dir: "d", symlink: "l", fifo: "p", socket: "s", chardev: "c", blockdev: "b", other: "?",
};

/**
 * `ls -l` mode string of a full st_mode, e.g. `0o100644` → `"-rw-r--r--"`,
 * with setuid/setgid/sticky shown as s/S and t/T.
 */
export function modeString(mode: number): string {
  const typeChar = TYPE_CHARS[kindOf(mode)];
  const rwx = (bits: number, special: boolean, specialChar: string) => {
    const x = bits & 1;
    let xc = x ? "x" : "-";
    if (special) xc = x ? specialChar : specialChar.toUpperCase();
    return (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + xc;
  };
  return (
    typeChar +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, "s") +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, "s") +
    rwx(mode & 7, (mode & 0o1000) !== 0, "t")
  );
}

/** Permission bits (mode & 0o7777) as a 4-digit octal string, e.g. `"0755"`. */
export function octalPerm(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** A time in ns since the epoch as an ISO-8601 UTC string with ms precision. */
export function isoFromNs(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}

/** A time in ns since the epoch as local `YYYY-MM-DD HH:MM` (for `ls -l`). */
export function shortTime(ns: bigint): string {
  const d = new Date(Number(ns / 1_000_000n));
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** JSON.stringify with bigints written as decimal strings and 2-space indentation. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2);
}

/** A ratio for display: `2.345` → `"2.35x"`. */
export function ratio(r: number): string {
  return `${r.toFixed(2)}x`;
}

/** Seconds (from ms) with 2 decimals, e.g. `1234` → `"1.23 s"`. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
