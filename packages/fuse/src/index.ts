export * from "./ops.js";
export * from "./nodes.js";
export * from "./mount.js";
export * from "./cacheprime.js";
