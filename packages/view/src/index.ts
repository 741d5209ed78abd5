export * from "./view.js";
