#!/usr/bin/env node
// Builds build/Release/agentfs_native.node with node-gyp from source.
// Nothing is downloaded: when no nodedir is configured and the running Node
// ships its headers beside it (<prefix>/include/node/node_api.h, as distro
// and official tarball installs do), node-gyp is pointed at them so it never
// tries to fetch a headers tarball.
"use strict";
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const pkgDir = path.resolve(__dirname, "..");

function findNodeGyp() {
  const candidates = [];
  try {
    candidates.push(require.resolve("node-gyp/bin/node-gyp.js", { paths: [pkgDir] }));
  } catch {}
  // npm bundles node-gyp: <npm>/node_modules/node-gyp/bin/node-gyp.js
  const npmExec = process.env.npm_execpath;
  if (npmExec) {
    candidates.push(path.join(path.dirname(npmExec), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  }
  const prefix = path.dirname(path.dirname(process.execPath));
  candidates.push(path.join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  return candidates.find((c) => fs.existsSync(c));
}

const args = ["rebuild"];
if (!process.env.npm_config_nodedir && !process.argv.some((a) => a.startsWith("--nodedir"))) {
  const prefix = path.dirname(path.dirname(process.execPath));
  if (fs.existsSync(path.join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
}
args.push(...process.argv.slice(2));

const gyp = findNodeGyp();
const cmd = gyp ? process.execPath : "node-gyp";
const cmdArgs = gyp ? [gyp, ...args] : args;
console.log(`[@agentfs/native] ${gyp ? "node " + gyp : "node-gyp"} ${args.join(" ")}`);
const r = spawnSync(cmd, cmdArgs, { cwd: pkgDir, stdio: "inherit" });
if (r.error) {
  console.error(`[@agentfs/native] could not run node-gyp: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
