/** Where the built entry point of a `worker_threads` module of this package lives. */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * URL of worker entry point `name` (e.g. "commitworker.js") beside this
 * module; when running from the TypeScript sources (tests), the built copy
 * in `dist/`.
 */
export function workerUrl(name: string): URL {
  const here = new URL(`./${name}`, import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL(`../dist/${name}`, import.meta.url);
}
