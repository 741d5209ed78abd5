export * from "./ops.js";
export * from "./mount.js";
