/**
 * The FUSE node table (src/nodes.ts) on its own: paths from links, lookup
 * counts, renames and unlinks, and the cases a review found broken (a cycle
 * of directory links, names dropped past a cap).
 */
import { describe, expect, it } from "vitest";
import { NodeTable, ROOT_ID } from "../src/nodes.js";

describe("NodeTable", () => {
  it("builds paths from links, follows renames and unlinks, and forgets a node at lookup count 0", () => {
    const t = new NodeTable();
    t.looked(10, ROOT_ID, "a", true);
    t.looked(11, 10, "f");
    expect(t.path(11)).toBe("/a/f");
    t.renamed(11, 10, "f", ROOT_ID, "g");
    expect(t.path(11)).toBe("/g");
    t.unlinked(11, ROOT_ID, "g");
    expect(t.path(11)).toBeNull();
    t.forget(11, 1);
    expect(t.get(11)).toBeUndefined();
    t.forget(ROOT_ID, 5);
    expect(t.path(ROOT_ID)).toBe("/");
  });

  it("directories found under a new parent keep one name, so swapped directories make no cycle; a cycle of links yields no path instead of recursing", () => {
    const t = new NodeTable();
    t.looked(10, ROOT_ID, "a", true);
    t.looked(20, 10, "b", true);
    // another process moved /a/b to /b and /a to /b/a; the kernel looks both up again under their new parents
    t.looked(10, 20, "a", true);
    expect(t.get(10)!.links).toEqual([{ parent: 20, name: "a" }]);
    expect(t.path(10)).toBeNull(); // 10 -> 20 -> 10: no way to the root (until 20 is found under the root)
    t.looked(20, ROOT_ID, "b", true);
    expect(t.path(10)).toBe("/b/a");
    // links that form a cycle anyway (hard-linked names recorded for non-directories) never recurse forever
    const u = new NodeTable();
    u.looked(30, 31, "x");
    u.looked(31, 30, "y");
    expect(u.path(30)).toBeNull();
    u.looked(31, ROOT_ID, "z");
    expect(u.path(30)).toBe("/z/x");
  });

  it("keeps every name of a file with many hard links: after unlinking 17 of 18 the remaining first one still leads to it", () => {
    const t = new NodeTable();
    t.looked(40, ROOT_ID, "f");
    for (let i = 1; i <= 17; i++) t.looked(40, ROOT_ID, `l${i}`);
    for (let i = 1; i <= 17; i++) t.unlinked(40, ROOT_ID, `l${i}`);
    expect(t.path(40)).toBe("/f");
  });

  it("revalidate keeps only the links that still lead to the same node", () => {
    const t = new NodeTable();
    t.looked(10, ROOT_ID, "a", true);
    t.looked(11, 10, "f");
    t.looked(12, 10, "g");
    const all = t.revalidate((parent, name, id) => !(parent === 10 && name === "g" && id === 12));
    expect(all.length).toBe(3);
    expect(t.path(11)).toBe("/a/f");
    expect(t.path(12)).toBeNull();
  });
});
